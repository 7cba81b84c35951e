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

-- One row: the last position and hash. Appends lock it, so positions are gapless and in commit order.
CREATE TABLE log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL,
    hash      bytea   NOT NULL
);
-- Updated by every append: a low fillfactor keeps its HOT chain pruned short.
ALTER TABLE log_head SET (fillfactor = 10);
INSERT INTO log_head (singleton, position, hash)
VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

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


-- The whole append in one call: take the log lock, check idempotency and the expected version, chain the
-- hashes (same canonical encoding as eventlog/hashing.py, which verification recomputes independently),
-- insert, and move the head. Each statement of a volatile function in READ COMMITTED takes a fresh
-- snapshot, so after the lock every earlier append is visible.
CREATE FUNCTION continuum_append(p_stream_id text, p_expected_version integer, p_events jsonb)
RETURNS TABLE (outcome text, first_position bigint, stream_version integer, recorded_at timestamptz,
               prev_hashes bytea[], hashes bytea[])
LANGUAGE plpgsql VOLATILE AS $$
-- p_events (jsonb, parsed once): [{"event_id", "event_type", "schema_version", "payload" (JSON text as a string),
--             "metadata" (likewise), "occurred_at"}, ...] in stream order.
-- An event id already stored makes the INSERT fail on the unique index (23505); the caller then
-- compares the stored events (an idempotent retry, or a conflict).
DECLARE
    v_head     bigint;
    v_prev     bytea;
    v_now      timestamptz;
    v_now_text text;
    v_version  integer;
    v_ids      uuid[];
    v_types    text[];
    v_schemas  integer[];
    v_payloads text[];
    v_metadata text[];
    v_occurred timestamptz[];
    v_prevs    bytea[];
    v_hashes   bytea[];
    n          integer;
    i          integer;
BEGIN
    SELECT h.position, h.hash INTO v_head, v_prev FROM log_head h WHERE h.singleton FOR UPDATE;
    v_now := clock_timestamp();
    SELECT coalesce(max(e.stream_version), 0) INTO v_version FROM events e WHERE e.stream_id = p_stream_id;
    IF p_expected_version IS NOT NULL AND v_version <> p_expected_version THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::bigint, v_version, NULL::timestamptz, NULL::bytea[], NULL::bytea[];
        RETURN;
    END IF;
    SELECT array_agg((x.e ->> 'event_id')::uuid ORDER BY x.n), array_agg(x.e ->> 'event_type' ORDER BY x.n),
           array_agg((x.e ->> 'schema_version')::integer ORDER BY x.n), array_agg(x.e ->> 'payload' ORDER BY x.n),
           array_agg(x.e ->> 'metadata' ORDER BY x.n), array_agg((x.e ->> 'occurred_at')::timestamptz ORDER BY x.n)
      INTO v_ids, v_types, v_schemas, v_payloads, v_metadata, v_occurred
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, n);
    n := array_length(v_ids, 1);
    v_prevs := array_fill(NULL::bytea, ARRAY[n]);
    v_hashes := array_fill(NULL::bytea, ARRAY[n]);
    v_now_text := to_json(to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text;
    FOR i IN 1 .. n LOOP
        v_prevs[i] := v_prev;
        v_prev := sha256(v_prev || convert_to(
            '[' || (v_head + i) || ',' || to_json(p_stream_id)::text || ',' || (v_version + i) || ','
            || to_json(v_ids[i]::text)::text || ',' || to_json(v_types[i])::text || ',' || v_schemas[i] || ','
            || to_json(to_char(v_occurred[i] AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text || ','
            || v_now_text || ',' || v_payloads[i] || ',' || v_metadata[i] || ']', 'UTF8'));
        v_hashes[i] := v_prev;
    END LOOP;
    INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload,
                        metadata, occurred_at, recorded_at, prev_hash, hash)
    SELECT v_head + k, p_stream_id, v_version + k, v_ids[k], v_types[k], v_schemas[k], v_payloads[k]::json,
           v_metadata[k]::json, v_occurred[k], v_now, v_prevs[k], v_hashes[k]
      FROM generate_series(1, n) AS k;
    UPDATE log_head SET position = v_head + n, hash = v_prev WHERE singleton;
    RETURN QUERY SELECT 'appended'::text, v_head + 1, v_version + n, v_now, v_prevs, v_hashes;
END $$;

-- Aborts the statement it is called in (the fast path's guard against a stale projection state).
CREATE FUNCTION continuum_abort(p_reason text) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_reason USING ERRCODE = 'CN001';
END $$;

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
