"""One SQL definition of the canonical event encoding, shared by the append and the verifier, and a faster
append built on it.

`continuum_canonical` spells out eventlog/hashing.py's encoding in SQL for the append (the verifier keeps
its own copy, on purpose: see eventlog/verify.py). The new `continuum_append` takes the events as
parallel arrays rather than one JSON document (nothing to build or parse as JSON on either side), builds
every event's encoding in one set-based query, and leaves only the SHA-256 chaining in the PL/pgSQL loop
(two statements per event instead of four). The hash chain is byte-for-byte the same;
tests/integration/test_event_store.py checks it against the Python definition.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE FUNCTION continuum_canonical(
    p_position bigint, p_stream_id text, p_stream_version integer, p_event_id uuid, p_event_type text,
    p_schema_version integer, p_occurred_at timestamptz, p_recorded_at timestamptz, p_payload text,
    p_metadata text
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE
RETURN convert_to(
    '[' || p_position || ',' || to_json(p_stream_id)::text || ',' || p_stream_version || ',"'
    || p_event_id::text || '",' || to_json(p_event_type)::text || ',' || p_schema_version
    || ',"' || to_char(p_occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    || '","' || to_char(p_recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    || '",' || p_payload || ',' || p_metadata || ']',
    'UTF8');

-- The append, taking its events as parallel arrays (one element per event, in stream order): no JSON to
-- parse on either side. An event id already stored makes the INSERT fail on the unique index (23505);
-- the caller then compares the stored events (an idempotent retry, or a conflict).
CREATE FUNCTION continuum_append(
    p_stream_id text, p_expected_version integer, p_event_ids uuid[], p_event_types text[],
    p_schema_versions integer[], p_payloads text[], p_metadata text[], p_occurred_at timestamptz[]
) RETURNS TABLE (outcome text, first_position bigint, stream_version integer, recorded_at timestamptz,
                 prev_hashes bytea[], hashes bytea[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_head     bigint;
    v_first    bytea;
    v_prev     bytea;
    v_now      timestamptz;
    v_version  integer;
    v_encoded  bytea[];
    v_hashes   bytea[];
    v_prevs    bytea[];
    n          integer := cardinality(p_event_ids);
    i          integer;
BEGIN
    IF n = 0 OR cardinality(p_event_types) <> n OR cardinality(p_schema_versions) <> n
       OR cardinality(p_payloads) <> n OR cardinality(p_metadata) <> n OR cardinality(p_occurred_at) <> n THEN
        RAISE EXCEPTION 'continuum_append needs one element per event in every array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT h.position, h.hash INTO v_head, v_first FROM log_head h WHERE h.singleton FOR UPDATE;
    v_now := clock_timestamp();
    SELECT coalesce(max(e.stream_version), 0) INTO v_version FROM events e WHERE e.stream_id = p_stream_id;
    IF p_expected_version IS NOT NULL AND v_version <> p_expected_version THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::bigint, v_version, NULL::timestamptz, NULL::bytea[], NULL::bytea[];
        RETURN;
    END IF;
    SELECT array_agg(continuum_canonical(v_head + k, p_stream_id, v_version + k, p_event_ids[k], p_event_types[k],
                                         p_schema_versions[k], p_occurred_at[k], v_now, p_payloads[k], p_metadata[k])
                     ORDER BY k)
      INTO v_encoded FROM generate_series(1, n) AS k;
    v_hashes := array_fill(NULL::bytea, ARRAY[n]);
    v_prev := v_first;
    FOR i IN 1 .. n LOOP
        v_prev := sha256(v_prev || v_encoded[i]);
        v_hashes[i] := v_prev;
    END LOOP;
    v_prevs := ARRAY[v_first] || v_hashes[1:n - 1];
    INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload,
                        metadata, occurred_at, recorded_at, prev_hash, hash)
    SELECT v_head + k, p_stream_id, v_version + k, p_event_ids[k], p_event_types[k], p_schema_versions[k],
           p_payloads[k]::json, p_metadata[k]::json, p_occurred_at[k], v_now, v_prevs[k], v_hashes[k]
      FROM generate_series(1, n) AS k;
    UPDATE log_head SET position = v_head + n, hash = v_prev WHERE singleton;
    RETURN QUERY SELECT 'appended'::text, v_head + 1, v_version + n, v_now, v_prevs, v_hashes;
END $$;

-- The first form (events as one JSON array), kept for callers written against it, now unpacks into the above.
CREATE OR REPLACE FUNCTION continuum_append(p_stream_id text, p_expected_version integer, p_events jsonb)
RETURNS TABLE (outcome text, first_position bigint, stream_version integer, recorded_at timestamptz,
               prev_hashes bytea[], hashes bytea[])
LANGUAGE sql VOLATILE AS $$
    SELECT a.* FROM (
        SELECT array_agg((x.e ->> 'event_id')::uuid ORDER BY x.n) AS ids,
               array_agg(x.e ->> 'event_type' ORDER BY x.n) AS types,
               array_agg((x.e ->> 'schema_version')::integer ORDER BY x.n) AS schemas,
               array_agg(x.e ->> 'payload' ORDER BY x.n) AS payloads,
               array_agg(x.e ->> 'metadata' ORDER BY x.n) AS metadata,
               array_agg((x.e ->> 'occurred_at')::timestamptz ORDER BY x.n) AS occurred
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, n)
    ) u,
    continuum_append(p_stream_id, p_expected_version, u.ids, u.types, u.schemas, u.payloads, u.metadata, u.occurred) a
$$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("event_log_0001", Path(__file__).with_name("0001_event_log.py"))
    assert spec and spec.loader
    first = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(first)
    start = first.SCHEMA.index("CREATE FUNCTION continuum_append")
    end = first.SCHEMA.index("-- Aborts the statement")
    op.execute(first.SCHEMA[start:end].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute(
        "DROP FUNCTION continuum_append(text, integer, uuid[], text[], integer[], text[], text[], timestamptz[])"
    )
    op.execute(
        "DROP FUNCTION continuum_canonical("
        "bigint, text, integer, uuid, text, integer, timestamptz, timestamptz, text, text)"
    )
