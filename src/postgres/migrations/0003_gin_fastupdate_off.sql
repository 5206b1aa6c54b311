-- 0003_gin_fastupdate_off.sql -- the tag index without GIN's pending list
-- (docs/POSTGRES.md, "tags"; the measurement: docs/PERFORMANCE.md,
-- "PostgreSQL: GIN fastupdate, measured").
--
-- With fastupdate on (PostgreSQL's default), new entries wait in a pending
-- list that every DCB query scans whole, ~0.016 ms a page, up to
-- gin_pending_list_limit (4 MB, ~8 ms); at 1 M events the DCB query's p50
-- was 4.2x slower with the list than without, at 10 M the same per page.
-- Off, each insert updates the index itself: bulk loads were 13-20 %
-- slower, single appends not measurably. The ALTER leaves an existing list
-- in place, so it is flushed here too.
ALTER INDEX evstore.events_tags SET (fastupdate = off);
SELECT gin_clean_pending_list('evstore.events_tags'::regclass);
