"""Group commit: several appends (to any streams) in one call, one transaction and one step of the chain.

`continuum_append_batch` takes the appends of several callers at once (one element per append in
`p_stream_ids`, `p_expected_versions` and `p_counts`; their events flattened into the event arrays, in
append order) and, under one lock of `log_head`, does for each what `continuum_append` does for one: the
expected-version check, then the events' encodings chained onto the previous event's hash. `log_head` is
moved once, at the end. An append whose stream is not at its expected version answers `conflict`, and
one whose event ids are (partly) stored already answers `exists`; neither writes anything nor stops the
others, and the caller settles them one at a time as a single append would (a retry recognised, or the
error). An expected version of -1 means "any". The hash chain is byte-for-byte the one `continuum_append`
builds (tests/integration/test_event_store.py verifies a log written in batches).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE FUNCTION continuum_append_batch(
    p_stream_ids text[], p_expected_versions integer[], p_counts integer[], p_event_ids uuid[],
    p_event_types text[], p_schema_versions integer[], p_payloads text[], p_metadata text[],
    p_occurred_at timestamptz[]
) RETURNS TABLE (append_index integer, outcome text, first_position bigint, stream_version integer,
                 recorded_at timestamptz, prev_hashes bytea[], hashes bytea[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_head     bigint;
    v_prev     bytea;
    v_now      timestamptz;
    v_version  integer;
    v_prevs    bytea[];
    v_hashes   bytea[];
    v_offset   integer := 0;
    m          integer := cardinality(p_stream_ids);
    total      integer := cardinality(p_event_ids);
    n          integer;
    r          integer;
    k          integer;
BEGIN
    IF m = 0 OR cardinality(p_expected_versions) <> m OR cardinality(p_counts) <> m
       OR (SELECT sum(c) FROM unnest(p_counts) AS c) <> total
       OR EXISTS (SELECT 1 FROM unnest(p_counts) AS c WHERE c < 1)
       OR cardinality(p_event_types) <> total OR cardinality(p_schema_versions) <> total
       OR cardinality(p_payloads) <> total OR cardinality(p_metadata) <> total
       OR cardinality(p_occurred_at) <> total THEN
        RAISE EXCEPTION 'continuum_append_batch needs one element per append and per event in every array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT h.position, h.hash INTO v_head, v_prev FROM log_head h WHERE h.singleton FOR UPDATE;
    v_now := clock_timestamp();
    FOR r IN 1 .. m LOOP
        n := p_counts[r];
        SELECT coalesce(max(e.stream_version), 0) INTO v_version FROM events e WHERE e.stream_id = p_stream_ids[r];
        IF p_expected_versions[r] <> -1 AND v_version <> p_expected_versions[r] THEN
            RETURN QUERY SELECT r, 'conflict'::text, NULL::bigint, v_version, NULL::timestamptz, NULL::bytea[],
                                NULL::bytea[];
        ELSIF EXISTS (SELECT 1 FROM events e WHERE e.event_id = ANY(p_event_ids[v_offset + 1 : v_offset + n])) THEN
            RETURN QUERY SELECT r, 'exists'::text, NULL::bigint, v_version, NULL::timestamptz, NULL::bytea[],
                                NULL::bytea[];
        ELSE
            v_prevs := '{}';
            v_hashes := '{}';
            FOR k IN 1 .. n LOOP
                v_prevs := v_prevs || v_prev;
                v_prev := sha256(v_prev || continuum_canonical(
                    v_head + k, p_stream_ids[r], v_version + k, p_event_ids[v_offset + k],
                    p_event_types[v_offset + k], p_schema_versions[v_offset + k], p_occurred_at[v_offset + k],
                    v_now, p_payloads[v_offset + k], p_metadata[v_offset + k]));
                v_hashes := v_hashes || v_prev;
            END LOOP;
            INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload,
                                metadata, occurred_at, recorded_at, prev_hash, hash)
            SELECT v_head + j, p_stream_ids[r], v_version + j, p_event_ids[v_offset + j], p_event_types[v_offset + j],
                   p_schema_versions[v_offset + j], p_payloads[v_offset + j]::json, p_metadata[v_offset + j]::json,
                   p_occurred_at[v_offset + j], v_now, v_prevs[j], v_hashes[j]
              FROM generate_series(1, n) AS j;
            RETURN QUERY SELECT r, 'appended'::text, v_head + 1, v_version + n, v_now, v_prevs, v_hashes;
            v_head := v_head + n;
        END IF;
        v_offset := v_offset + n;
    END LOOP;
    UPDATE log_head SET position = v_head, hash = v_prev WHERE singleton;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION continuum_append_batch("
        "text[], integer[], integer[], uuid[], text[], integer[], text[], text[], timestamptz[])"
    )
