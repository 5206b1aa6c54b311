-- 0006_lean_append.sql -- a leaner evstore.append (issue 18, "Appends as
-- sets", first step; docs/POSTGRES.md, "The append"). Same signature,
-- statuses and results as 0004 (whose tombstone rules it keeps exactly),
-- fewer statements per call, since every call runs in turn under the head
-- row lock:
--  - the idempotency lookup only when the caller gave an id (e_given);
--  - one lookup of the expected version for a one-part append (an index
--    probe of evstore.streams), one statement that reads and checks every
--    part otherwise;
--  - the tenants insert only when no part's stream existed before (a
--    streams row of the tenant implies its tenants row: both are written
--    by this function, in the same transaction, and neither is deleted);
--  - when the store stamps every event (e_at all 0) at most one times row,
--    without the per-event loop;
--  - the events, streams, tenants and times inserts and the head update as
--    one statement (data-modifying WITH: each part runs to completion).
-- The head lock stays a statement of its own, before every read: a later
-- statement's snapshot is taken after the lock is granted, so it sees the
-- append that held the lock before (a read in the locking statement would
-- use the snapshot taken before the wait).
CREATE OR REPLACE FUNCTION evstore.append(
    p_tenant text, p_streams text[], p_expected bigint[], p_counts integer[],
    e_part integer[], e_ids uuid[], e_given boolean[], e_types text[],
    e_content smallint[], e_data bytea[], e_meta bytea[], e_toff integer[],
    e_ntags integer[], e_tags text[], e_corr uuid[], e_caus uuid[], e_at bigint[],
    c_after bigint[], c_nitems integer[], i_ntypes integer[], i_ntags integer[],
    q_types text[], q_tags text[],
    OUT status integer, OUT versions bigint[], OUT first_versions bigint[],
    OUT first_positions bigint[], OUT last_positions bigint[], OUT conflicts bigint[],
    OUT dup_index integer, OUT dup_position bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, evstore, pg_temp AS $fn$
DECLARE
    h bigint;
    stamp bigint;
    maxat bigint;
    n integer := cardinality(e_ids);
    np integer := cardinality(p_streams);
    k integer;
    pos bigint;
    v bigint;
    ex bigint;
    failed boolean := false;
    poff integer[];
    acc integer := 0;
    item_off integer := 1;
    t_off integer := 0;
    g_off integer := 0;
    at bigint;
    known boolean := false;  -- a part's stream existed: the tenant is stored
    new_time boolean := false;
BEGIN
    SELECT hd.position, hd.last_stamp, hd.max_recorded_at INTO h, stamp, maxat
        FROM evstore.head hd FOR UPDATE;

    -- idempotency by the ids the caller gave
    IF true = ANY(e_given) THEN
        SELECT u.o, ev.position INTO k, pos
            FROM unnest(e_ids, e_given) WITH ORDINALITY AS u(id, given, o)
            JOIN evstore.events ev ON ev.id = u.id
            WHERE u.given ORDER BY u.o LIMIT 1;
        IF FOUND THEN
            IF k > 1 THEN
                status := 3; dup_index := k - 1; dup_position := pos;
                RETURN;
            END IF;
            -- a retry if every event is stored, in order, with the same body
            SELECT u.o, ev.position INTO k, dup_position
                FROM unnest(e_part, e_ids, e_given, e_types, e_content, e_data, e_meta, e_toff,
                            e_ntags, e_corr, e_caus)
                     WITH ORDINALITY AS u(part, id, given, type, ct, data, meta, toff, nt, corr,
                                          caus, o)
                LEFT JOIN evstore.events ev ON ev.id = u.id AND u.given
                WHERE ev.position IS NULL OR NOT (
                    ev.position = pos + u.o - 1 AND ev.tenant = p_tenant AND
                    ev.stream = p_streams[u.part] AND ev.type = u.type AND
                    ev.content_type = u.ct AND ev.data = u.data AND ev.metadata = u.meta AND
                    ev.tags = e_tags[u.toff + 1 : u.toff + u.nt] AND
                    ev.correlation_id IS NOT DISTINCT FROM u.corr AND
                    ev.causation_id IS NOT DISTINCT FROM u.caus)
                ORDER BY u.o LIMIT 1;
            IF FOUND THEN
                status := 4; dup_index := k - 1; first_positions := ARRAY[pos];
                RETURN;
            END IF;
            SELECT array_agg(r.fv ORDER BY r.part), array_agg(r.lv ORDER BY r.part),
                   array_agg(r.fp ORDER BY r.part), array_agg(r.lp ORDER BY r.part)
                INTO first_versions, versions, first_positions, last_positions
                FROM (SELECT u.part, min(ev.stream_version) AS fv, max(ev.stream_version) AS lv,
                             min(ev.position) AS fp, max(ev.position) AS lp
                        FROM unnest(e_part, e_ids) AS u(part, id)
                        JOIN evstore.events ev ON ev.id = u.id
                        GROUP BY u.part) r;
            status := 2;
            RETURN;
        END IF;
    END IF;

    -- expected versions: every part is checked, every failure reported;
    -- a tombstoned stream (version 2^63-1) accepts no expected version
    IF np = 1 THEN
        v := -1;
        IF p_streams[1] <> '' THEN
            SELECT s.version INTO v FROM evstore.streams s
                WHERE s.tenant = p_tenant AND s.stream = p_streams[1];
            v := coalesce(v, -1);
        END IF;
        ex := p_expected[1];
        versions := ARRAY[v];
        failed := v = 9223372036854775807 OR
            NOT (ex = -2 OR (ex = -1 AND v = -1) OR (ex = -4 AND v >= 0) OR (ex >= 0 AND v = ex));
    ELSE
        SELECT array_agg(x.v ORDER BY x.o),
               coalesce(bool_or(x.v = 9223372036854775807 OR
                                NOT (x.ex = -2 OR (x.ex = -1 AND x.v = -1) OR
                                     (x.ex = -4 AND x.v >= 0) OR (x.ex >= 0 AND x.v = x.ex))),
                        false)
            INTO versions, failed
            FROM (SELECT y.o, y.ex, coalesce(s.version, -1) AS v
                    FROM unnest(p_streams, p_expected) WITH ORDINALITY AS y(stream, ex, o)
                    LEFT JOIN evstore.streams s
                           ON s.tenant = p_tenant AND s.stream = y.stream) x;
    END IF;

    -- DCB conditions, under the same lock: race-free
    conflicts := array_fill(0::bigint, ARRAY[cardinality(c_after)]);
    FOR c IN 1..coalesce(cardinality(c_after), 0) LOOP
        pos := NULL;
        EXECUTE format('SELECT position FROM evstore.events WHERE tenant = $1 AND NOT system '
                       'AND position > $2 AND (%s) ORDER BY position LIMIT 1',
                       evstore.query_pred(i_ntypes, i_ntags, q_tags, item_off,
                                          item_off + c_nitems[c] - 1, t_off, g_off,
                                          '$3', '$4'))
            INTO pos USING p_tenant, c_after[c], q_types, q_tags;
        IF pos IS NOT NULL THEN
            conflicts[c] := pos;
            failed := true;
        END IF;
        FOR i IN item_off..item_off + c_nitems[c] - 1 LOOP
            t_off := t_off + i_ntypes[i];
            g_off := g_off + i_ntags[i];
        END LOOP;
        item_off := item_off + c_nitems[c];
    END LOOP;
    IF failed THEN
        status := 1;
        RETURN;
    END IF;

    -- write: positions h+1.., stamped once
    stamp := greatest(stamp, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    poff := array_fill(0, ARRAY[np]);
    first_versions := versions;
    first_positions := versions;
    last_positions := versions;
    FOR p IN 1..np LOOP
        IF versions[p] >= 0 THEN
            known := true;
        END IF;
        poff[p] := acc;
        first_positions[p] := h + acc + 1;
        acc := acc + p_counts[p];
        last_positions[p] := h + acc;
        IF p_streams[p] = '' THEN
            first_versions[p] := -1;
        ELSIF p_counts[p] = 1 AND left(p_streams[p], 1) <> '$' AND
              e_types[poff[p] + 1] = '$streamDeleted' THEN
            -- the tombstone (evs_stream_tombstone): its version is 2^63-1
            first_versions[p] := 9223372036854775807;
            versions[p] := 9223372036854775807;
        ELSE
            first_versions[p] := versions[p] + 1;
            versions[p] := versions[p] + p_counts[p];
        END IF;
    END LOOP;
    IF h = 0 THEN
        known := false;
    END IF;
    -- token_at's entries: wherever the running maximum of recorded_at grows
    IF 0 = ALL(e_at) THEN
        IF n > 0 AND stamp > maxat THEN
            new_time := true;   -- the first event, below
            maxat := stamp;
        END IF;
    ELSE
        FOR i IN 1..n LOOP
            at := CASE WHEN e_at[i] = 0 THEN stamp ELSE e_at[i] END;
            IF at > maxat THEN
                INSERT INTO evstore.times VALUES (at, h + i);
                maxat := at;
            END IF;
        END LOOP;
    END IF;
    WITH ins_events AS (
        INSERT INTO evstore.events (position, tenant, stream, stream_version, id, type,
                                    content_type, data, metadata, tags, correlation_id,
                                    causation_id, recorded_at, system)
            SELECT h + u.o, p_tenant, p_streams[u.part],
                   CASE WHEN p_streams[u.part] = '' THEN -1
                        ELSE first_versions[u.part] + (u.o - 1 - poff[u.part]) END,
                   u.id, u.type, u.ct, u.data, u.meta, e_tags[u.toff + 1 : u.toff + u.nt],
                   u.corr, u.caus, CASE WHEN u.at = 0 THEN stamp ELSE u.at END,
                   left(p_streams[u.part], 1) = '$'
            FROM unnest(e_part, e_ids, e_types, e_content, e_data, e_meta, e_toff, e_ntags,
                        e_corr, e_caus, e_at)
                 WITH ORDINALITY AS u(part, id, type, ct, data, meta, toff, nt, corr, caus,
                                      at, o)),
    ins_streams AS (
        INSERT INTO evstore.streams (tenant, stream, version)
            SELECT p_tenant, x.stream, versions[x.o]
            FROM unnest(p_streams) WITH ORDINALITY AS x(stream, o)
            WHERE x.stream <> ''
            ON CONFLICT (tenant, stream) DO UPDATE SET version = EXCLUDED.version),
    ins_tenant AS (
        INSERT INTO evstore.tenants SELECT p_tenant WHERE NOT known
            ON CONFLICT DO NOTHING),
    ins_time AS (
        INSERT INTO evstore.times SELECT stamp, h + 1 WHERE new_time)
    UPDATE evstore.head SET position = h + n, last_stamp = stamp, max_recorded_at = maxat;
    PERFORM pg_notify('evstore_commit', '');
    status := 0;
END
$fn$;
