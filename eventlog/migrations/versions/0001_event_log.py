"""The append-only event log, its head, the episodes projection and the least-privilege role.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE events (
    position        bigint      PRIMARY KEY CHECK (position >= 1),
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version >= 1),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    payload         json        NOT NULL,   -- json, not jsonb: the exact hashed text is kept
    metadata        json        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    prev_hash       bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (octet_length(hash) = 32),
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_type_recorded ON events (event_type, recorded_at);

-- One row: the last position and hash. Appends lock it, so positions are gapless and in commit order.
CREATE TABLE log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL,
    hash      bytea   NOT NULL
);
INSERT INTO log_head (singleton, position, hash) VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION continuum_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION continuum_refuse_event_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION continuum_refuse_event_change();

CREATE TABLE episodes (
    episode_id      text        PRIMARY KEY,
    client_id       text        NOT NULL,
    status          text        NOT NULL,
    status_since    timestamptz NOT NULL,
    level           text,
    level_since     timestamptz,
    flags           text[]      NOT NULL DEFAULT '{}',
    opened_at       timestamptz NOT NULL,
    closed_at       timestamptz,
    version         integer     NOT NULL,
    last_position   bigint      NOT NULL,
    state           jsonb       NOT NULL
);
CREATE INDEX episodes_level_status ON episodes (level, status);
CREATE INDEX episodes_status ON episodes (status);
CREATE INDEX episodes_flags ON episodes USING gin (flags);

CREATE TABLE projection_checkpoints (
    name     text   PRIMARY KEY,
    position bigint NOT NULL
);
INSERT INTO projection_checkpoints (name, position) VALUES ('episodes', 0);

REVOKE UPDATE, DELETE, TRUNCATE ON events FROM PUBLIC;
"""

# The application role: INSERT and SELECT on the log, nothing more. Created only where allowed.
ROLE = r"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN
        CREATE ROLE continuum_app NOLOGIN;
    END IF;
    EXECUTE format('GRANT continuum_app TO %I', current_user);
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'continuum_app role not created (no CREATEROLE); set CONTINUUM_DATABASE_ROLE to an empty value';
END $$;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN
        GRANT USAGE ON SCHEMA public TO continuum_app;
        GRANT SELECT, INSERT ON events TO continuum_app;
        GRANT SELECT, UPDATE ON log_head TO continuum_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON episodes, projection_checkpoints TO continuum_app;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(ROLE)
