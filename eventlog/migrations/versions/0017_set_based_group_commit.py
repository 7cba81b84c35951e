"""Group commit, set based: `continuum_append_batch` decides every append of the group in one query and writes
all their events in one INSERT, leaving only the SHA-256 chaining in the PL/pgSQL loop.

Migration 0010's function ran, per append, a version query, an existence query, an INSERT and a RETURN QUERY,
and built each event's encoding in the loop; its existence query, planned once per connection while the log
was small, went on scanning the whole table as the log grew (a group of 16 took 30 ms). This one reads the
versions of the call's streams in one query and its stored event ids in one query planned at each call,
decides the appends in a loop without queries, encodes and inserts all the appended events in one statement
each. The arguments, the answers (a later append to a stream of the same call sees the earlier ones' events)
and the hash chain are 0010's, byte for byte (tests/integration/test_event_store.py verifies a log written in
groups).

Revision ID: 0017
Revises: 0015
"""

from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE OR REPLACE FUNCTION continuum_append_batch(
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
    v_stored   uuid[];     -- the call's event ids in the log, and those of its appends decided so far
    v_streams  text[];     -- the call's distinct streams
    v_stream_versions integer[];  -- their versions, as the call's appends move them
    v_outcomes text[] := '{}';     -- per append: appended, conflict or exists
    v_versions integer[] := '{}';  -- per append: its stream's version before it
    v_offsets  integer[] := '{}';  -- per append: how many events of the arrays come before its own
    v_starts   integer[] := '{}';  -- per appended append: its first event's place among the appended events
    v_offset   integer := 0;
    v_appended integer := 0;
    v_events   integer[];  -- per appended event, in position order: its index in the event arrays
    v_appends  integer[];  -- per appended event: its append's index
    v_encoded  bytea[];
    v_hashes   bytea[];
    v_prevs    bytea[];
    m          integer := cardinality(p_stream_ids);
    total      integer := cardinality(p_event_ids);
    n          integer;
    i          integer;
    ra         integer;
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
    -- The call's event ids stored already. EXECUTE plans it afresh each time: a plan cached while the log was
    -- small scans the whole table (it did, and a group took 30 ms); planned now, it probes the unique index.
    EXECUTE 'SELECT coalesce(array_agg(event_id), ''{}'') FROM events WHERE event_id = ANY($1)' INTO v_stored
        USING p_event_ids;
    -- Each stream's version, read once (an index probe per stream).
    SELECT array_agg(u.stream_id), array_agg(s.version) INTO v_streams, v_stream_versions
      FROM (SELECT DISTINCT t.stream_id FROM unnest(p_stream_ids) AS t(stream_id)) u
     CROSS JOIN LATERAL (SELECT coalesce(max(e.stream_version), 0) AS version
                           FROM events e WHERE e.stream_id = u.stream_id) s;
    -- Each append's outcome, in order, as 0010 decided it (the version first, then the ids), without a query:
    -- a later append to a stream sees the earlier ones' events, and one repeating their ids finds them stored.
    FOR ra IN 1 .. m LOOP
        n := p_counts[ra];
        i := array_position(v_streams, p_stream_ids[ra]);
        v_versions[ra] := v_stream_versions[i];
        v_offsets[ra] := v_offset;
        IF p_expected_versions[ra] <> -1 AND v_stream_versions[i] <> p_expected_versions[ra] THEN
            v_outcomes[ra] := 'conflict';
        ELSIF p_event_ids[v_offset + 1 : v_offset + n] && v_stored THEN
            v_outcomes[ra] := 'exists';
        ELSE
            v_outcomes[ra] := 'appended';
            v_starts[ra] := v_appended + 1;
            v_appended := v_appended + n;
            v_stream_versions[i] := v_stream_versions[i] + n;
            v_stored := v_stored || p_event_ids[v_offset + 1 : v_offset + n];
        END IF;
        v_offset := v_offset + n;
    END LOOP;
    -- The appended events in position order, and their encodings (as continuum_canonical defines them).
    SELECT array_agg(x.k ORDER BY x.k), array_agg(x.r ORDER BY x.k),
           array_agg(continuum_canonical(
               v_head + v_starts[x.r] + x.k - v_offsets[x.r] - 1, p_stream_ids[x.r],
               v_versions[x.r] + x.k - v_offsets[x.r],
               p_event_ids[x.k], p_event_types[x.k], p_schema_versions[x.k], p_occurred_at[x.k], v_now, p_payloads[x.k],
               p_metadata[x.k]) ORDER BY x.k)
      INTO v_events, v_appends, v_encoded
      FROM (SELECT r, generate_series(v_offsets[r] + 1, v_offsets[r] + p_counts[r]) AS k
              FROM generate_series(1, m) AS r WHERE v_outcomes[r] = 'appended') x;
    n := coalesce(cardinality(v_events), 0);
    IF n > 0 THEN
        v_hashes := array_fill(NULL::bytea, ARRAY[n]);
        v_prevs := array_fill(NULL::bytea, ARRAY[n]);
        FOR i IN 1 .. n LOOP
            v_prevs[i] := v_prev;
            v_prev := sha256(v_prev || v_encoded[i]);
            v_hashes[i] := v_prev;
        END LOOP;
        INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload,
                            metadata, occurred_at, recorded_at, prev_hash, hash)
        SELECT v_head + j, p_stream_ids[v_appends[j]], v_versions[v_appends[j]] + v_events[j] - v_offsets[v_appends[j]],
               p_event_ids[v_events[j]], p_event_types[v_events[j]], p_schema_versions[v_events[j]],
               p_payloads[v_events[j]]::json, p_metadata[v_events[j]]::json, p_occurred_at[v_events[j]], v_now,
               v_prevs[j], v_hashes[j]
          FROM generate_series(1, n) AS j;
        UPDATE log_head SET position = v_head + n, hash = v_prev WHERE singleton;
    END IF;
    RETURN QUERY
        SELECT r, v_outcomes[r],
               CASE WHEN v_outcomes[r] = 'appended' THEN v_head + v_starts[r] END,
               CASE WHEN v_outcomes[r] = 'appended' THEN v_versions[r] + p_counts[r] ELSE v_versions[r] END,
               CASE WHEN v_outcomes[r] = 'appended' THEN v_now END,
               CASE WHEN v_outcomes[r] = 'appended' THEN v_prevs[v_starts[r] : v_starts[r] + p_counts[r] - 1] END,
               CASE WHEN v_outcomes[r] = 'appended' THEN v_hashes[v_starts[r] : v_starts[r] + p_counts[r] - 1] END
          FROM generate_series(1, m) AS r;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    # 0010's definition again (CREATE OR REPLACE: the signature is the same).
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("group_commit_0010", Path(__file__).with_name("0010_group_commit.py"))
    assert spec and spec.loader
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(previous.SCHEMA.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
