-- 0004_tombstone.sql -- tombstones (evs_stream_tombstone; docs/DESIGN.md,
-- "Stream lifecycle"): evstore.append as in 0001, with two changes that
-- the embedded store makes in its writer too (core/backend.h):
--  - a part whose one event has type "$streamDeleted" (which the library
--    refuses from callers) is stored with stream version 2^63-1,
--    KurrentDB's DeletedStream number, which becomes the stream's version;
--  - no expected version accepts a stream at that version, so nothing can
--    be appended to a tombstoned stream again (the library then says
--    EVS_EDELETED).
-- The fixed search_path of 0002 is set again: CREATE OR REPLACE replaces
-- the function's settings with the ones it names.
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
BEGIN
    SELECT hd.position, hd.last_stamp, hd.max_recorded_at INTO h, stamp, maxat
        FROM evstore.head hd FOR UPDATE;

    -- idempotency by the ids the caller gave
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

    -- expected versions: every part is checked, every failure reported
    SELECT array_agg(coalesce(s.version, -1) ORDER BY x.o) INTO versions
        FROM unnest(p_streams) WITH ORDINALITY AS x(stream, o)
        LEFT JOIN evstore.streams s ON s.tenant = p_tenant AND s.stream = x.stream;
    FOR p IN 1..np LOOP
        v := versions[p];
        ex := p_expected[p];
        -- a tombstoned stream (version 2^63-1) accepts no expected version
        IF v = 9223372036854775807 OR
           NOT (ex = -2 OR (ex = -1 AND v = -1) OR (ex = -4 AND v >= 0) OR (ex >= 0 AND v = ex)) THEN
            failed := true;
        END IF;
    END LOOP;

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
             WITH ORDINALITY AS u(part, id, type, ct, data, meta, toff, nt, corr, caus, at, o);
    INSERT INTO evstore.streams (tenant, stream, version)
        SELECT p_tenant, x.stream, versions[x.o]
        FROM unnest(p_streams) WITH ORDINALITY AS x(stream, o)
        WHERE x.stream <> ''
        ON CONFLICT (tenant, stream) DO UPDATE SET version = EXCLUDED.version;
    IF h = 0 OR NOT EXISTS (SELECT 1 FROM evstore.tenants t WHERE t.tenant = p_tenant) THEN
        INSERT INTO evstore.tenants VALUES (p_tenant) ON CONFLICT DO NOTHING;
    END IF;
    FOR i IN 1..n LOOP
        at := CASE WHEN e_at[i] = 0 THEN stamp ELSE e_at[i] END;
        IF at > maxat THEN
            INSERT INTO evstore.times VALUES (at, h + i);
            maxat := at;
        END IF;
    END LOOP;
    UPDATE evstore.head SET position = h + n, last_stamp = stamp, max_recorded_at = maxat;
    PERFORM pg_notify('evstore_commit', '');
    status := 0;
END
$fn$;
