-- 0005_subject_keys.sql -- crypto-shredding's key store (docs/ERASURE.md,
-- src/postgres/pg_keys.c): one 32-byte key per (tenant, subject), kept out
-- of evstore.events so that it can be destroyed. evs_forget sets key to
-- NULL and forgotten_at (the row stays as the "forgotten" mark: an append
-- under that subject is refused). The old row version holding the key is
-- a dead tuple until VACUUM, and the key is in the WAL until the WAL is
-- recycled (and in any base backup or WAL archive): ERASURE.md says what
-- that means. The table is tiny, so autovacuum is told to vacuum it after
-- every change.
CREATE TABLE evstore.subject_keys (
    tenant text NOT NULL,
    subject text NOT NULL,
    key bytea,                          -- NULL once forgotten
    created_at timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz,           -- set by evs_forget
    PRIMARY KEY (tenant, subject),
    CHECK ((key IS NULL) = (forgotten_at IS NOT NULL)),
    CHECK (key IS NULL OR octet_length(key) = 32)
) WITH (autovacuum_vacuum_threshold = 1, autovacuum_vacuum_scale_factor = 0);
