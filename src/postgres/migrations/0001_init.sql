-- 0001_init.sql -- the first evstore schema (docs/POSTGRES.md).
--
-- Applied by the library itself on a read-write open, in one transaction,
-- inside the schema `evstore` (created by the migration runner together
-- with evstore.schema_migrations). The text applied is this file's text,
-- embedded into the library at build time; its checksum is recorded.
-- Never edit an applied migration: add 0002_....sql instead.

-- The global head: one row, locked by every append (SELECT ... FOR UPDATE)
-- so that positions are assigned and become visible in commit order.
CREATE TABLE evstore.head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    position bigint NOT NULL,        -- last committed position (0: empty)
    last_stamp bigint NOT NULL,      -- last recorded_at the store stamped (µs)
    max_recorded_at bigint NOT NULL  -- running maximum of recorded_at (times)
);
INSERT INTO evstore.head VALUES (true, 0, 0, -1);

CREATE TABLE evstore.events (
    position bigint PRIMARY KEY,
    tenant text NOT NULL,
    stream text NOT NULL,            -- '' for an event without a stream
    stream_version bigint NOT NULL,  -- -1 for an event without a stream
    id uuid NOT NULL UNIQUE,
    type text NOT NULL,
    content_type smallint NOT NULL,
    data bytea NOT NULL,
    metadata bytea NOT NULL,         -- '' = none
    tags text[] NOT NULL,
    correlation_id uuid,             -- NULL = none
    causation_id uuid,
    recorded_at bigint NOT NULL,     -- µs since the Unix epoch
    system boolean NOT NULL          -- stream starts with '$' (checkpoints)
);
-- stream reads (and the uniqueness of a stream's versions)
CREATE UNIQUE INDEX events_stream ON evstore.events (tenant, stream, stream_version)
    WHERE stream <> '';
-- a tenant's $all, tenant head/tail tokens, queries matching every event
CREATE INDEX events_tenant ON evstore.events (tenant, position) WHERE NOT system;
-- queries by type
CREATE INDEX events_type ON evstore.events (tenant, type, position) WHERE NOT system;
-- queries by "$category:NAME" (the stream name up to the first '-')
CREATE INDEX events_category ON evstore.events (tenant, split_part(stream, '-', 1), position)
    WHERE NOT system AND stream <> '';
-- queries by tag: one GIN index on the array (see POSTGRES.md, "tags")
CREATE INDEX events_tags ON evstore.events USING gin (tags)
    WHERE NOT system AND cardinality(tags) > 0;

-- The version of every stream (system streams included).
CREATE TABLE evstore.streams (
    tenant text NOT NULL,
    stream text NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (tenant, stream)
);

-- Every tenant with at least one event (stats).
CREATE TABLE evstore.tenants (
    tenant text PRIMARY KEY
);

-- token_at: an entry wherever the running maximum of recorded_at grows.
CREATE TABLE evstore.times (
    recorded_at bigint PRIMARY KEY,
    position bigint NOT NULL
);

CREATE TABLE evstore.snapshots (
    tenant text NOT NULL,
    stream text NOT NULL,
    version bigint NOT NULL,
    saved_at bigint NOT NULL,
    schema text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, stream, version)
);

-- The SQL predicate of a DCB query (items OR'ed; an item: one of its
-- types AND all its tags). Only integers and fixed text are formatted into
-- it: the types and tags themselves stay in the arrays named tp and gp
-- (bound parameters of the statement that runs it). Items i_from..i_to of
-- i_ntypes/i_ntags; their types start after t_off in tp, their tags after
-- g_off in gp.
CREATE FUNCTION evstore.query_pred(i_ntypes integer[], i_ntags integer[], q_tags text[],
                                   i_from integer, i_to integer, t_off integer,
                                   g_off integer, tp text, gp text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    pred text := '';
    item text;
    plain text;
    k integer;
    t text;
BEGIN
    IF i_to < i_from THEN
        RETURN 'true'; -- no items: the "all" query
    END IF;
    FOR i IN i_from..i_to LOOP
        item := '';
        IF i_ntypes[i] > 0 THEN
            item := format('type = ANY(%s[%s:%s])', tp, t_off + 1, t_off + i_ntypes[i]);
        END IF;
        plain := '';
        FOR j IN 1..i_ntags[i] LOOP
            k := g_off + j;
            t := q_tags[k];
            IF left(t, 8) = '$stream:' THEN
                item := item || CASE WHEN item = '' THEN '' ELSE ' AND ' END ||
                        format('stream = substr(%s[%s], 9)', gp, k);
            ELSIF left(t, 10) = '$category:' THEN
                item := item || CASE WHEN item = '' THEN '' ELSE ' AND ' END ||
                        format('stream <> '''' AND split_part(stream, ''-'', 1) = substr(%s[%s], 11)',
                               gp, k);
            ELSE
                plain := plain || CASE WHEN plain = '' THEN '' ELSE ', ' END ||
                         format('%s[%s]', gp, k);
            END IF;
        END LOOP;
        IF plain <> '' THEN
            item := item || CASE WHEN item = '' THEN '' ELSE ' AND ' END ||
                    'cardinality(tags) > 0 AND tags @> ARRAY[' || plain || ']::text[]';
        END IF;
        IF item = '' THEN
            RETURN 'true'; -- an item with neither types nor tags matches every event
        END IF;
        pred := pred || CASE WHEN pred = '' THEN '' ELSE ' OR ' END || '(' || item || ')';
        t_off := t_off + i_ntypes[i];
        g_off := g_off + i_ntags[i];
    END LOOP;
    RETURN pred;
END
$fn$;

-- A DCB read: the tenant's events matching the query with lo < position <
-- hi (and position <= the head), oldest first (or newest first), at most
-- lim. The first column is the head the read was bounded by; when nothing
-- matches, one row with only the head.
CREATE FUNCTION evstore.read_query(p_tenant text, lo bigint, hi bigint, backward boolean,
                                   lim bigint, i_ntypes integer[], i_ntags integer[],
                                   q_types text[], q_tags text[])
RETURNS TABLE (head bigint, "position" bigint, stream_version bigint, tenant text,
               stream text, type text, id uuid, correlation_id uuid, causation_id uuid,
               recorded_at bigint, content_type smallint, data bytea, metadata bytea,
               tags text[])
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    h bigint;
BEGIN
    SELECT hd.position INTO h FROM evstore.head hd;
    IF hi > h + 1 THEN
        hi := h + 1;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT $5, position, stream_version, tenant, stream, type, id, correlation_id, '
        'causation_id, recorded_at, content_type, data, metadata, tags '
        'FROM evstore.events WHERE tenant = $1 AND NOT system AND position > $2 '
        'AND position < $3 AND (%s) ORDER BY position %s LIMIT $4',
        evstore.query_pred(i_ntypes, i_ntags, q_tags, 1, cardinality(i_ntypes), 0, 0,
                           '$6', '$7'),
        CASE WHEN backward THEN 'DESC' ELSE 'ASC' END)
        USING p_tenant, lo, hi, lim, h, q_types, q_tags;
    IF NOT FOUND THEN
        RETURN QUERY SELECT h, NULL::bigint, NULL::bigint, NULL::text, NULL::text,
            NULL::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::bigint, NULL::smallint,
            NULL::bytea, NULL::bytea, NULL::text[];
    END IF;
END
$fn$;

-- One append (evs_append_ex): idempotency, expected versions, DCB
-- conditions and the insert, under the head row lock, in the caller's
-- transaction. Returns a status instead of raising, so that several
-- appends can share one transaction (group commit):
--   0 written; 1 conflict (versions: the actual version of every part,
--   conflicts: the first matching position of every condition, 0 = held);
--   2 a retry of a stored append (the original result); 3 an event id
--   other than the first is stored (dup_index, dup_position); 4 the first
--   id is stored but event dup_index is not the same event (dup_position
--   NULL: not stored; first_positions[1]: where the first one is).
-- Events are given in part order; e_part is each event's part (1-based),
-- e_toff/e_ntags its slice of e_tags.
CREATE FUNCTION evstore.append(
    p_tenant text, p_streams text[], p_expected bigint[], p_counts integer[],
    e_part integer[], e_ids uuid[], e_given boolean[], e_types text[],
    e_content smallint[], e_data bytea[], e_meta bytea[], e_toff integer[],
    e_ntags integer[], e_tags text[], e_corr uuid[], e_caus uuid[], e_at bigint[],
    c_after bigint[], c_nitems integer[], i_ntypes integer[], i_ntags integer[],
    q_types text[], q_tags text[],
    OUT status integer, OUT versions bigint[], OUT first_versions bigint[],
    OUT first_positions bigint[], OUT last_positions bigint[], OUT conflicts bigint[],
    OUT dup_index integer, OUT dup_position bigint)
LANGUAGE plpgsql AS $fn$
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
        IF NOT (ex = -2 OR (ex = -1 AND v = -1) OR (ex = -4 AND v >= 0) OR (ex >= 0 AND v = ex)) THEN
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

-- Save a snapshot and keep the newest `keep` of the stream. Returns the
-- stream's version (-1: no stream); nothing is saved when version is
-- beyond it.
CREATE FUNCTION evstore.snapshot_save(p_tenant text, p_stream text, p_version bigint,
                                      p_schema text, p_data bytea, p_keep integer,
                                      p_now bigint)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    v bigint;
BEGIN
    SELECT s.version INTO v FROM evstore.streams s
        WHERE s.tenant = p_tenant AND s.stream = p_stream;
    IF v IS NULL OR p_version > v THEN
        RETURN coalesce(v, -1);
    END IF;
    INSERT INTO evstore.snapshots VALUES (p_tenant, p_stream, p_version, p_now, p_schema, p_data)
        ON CONFLICT (tenant, stream, version)
        DO UPDATE SET saved_at = EXCLUDED.saved_at, schema = EXCLUDED.schema,
                      data = EXCLUDED.data;
    DELETE FROM evstore.snapshots sn
        WHERE sn.tenant = p_tenant AND sn.stream = p_stream AND sn.version < ALL (
            SELECT s2.version FROM evstore.snapshots s2
            WHERE s2.tenant = p_tenant AND s2.stream = p_stream
            ORDER BY s2.version DESC LIMIT p_keep);
    RETURN v;
END
$fn$;
