-- 0002_search_path.sql -- every function of schema evstore runs with a
-- fixed search_path (docs/POSTGRES.md, "Migrations").
--
-- A function runs with the caller's search_path unless it sets its own:
-- a role or database whose search_path puts another schema first could
-- make an unqualified name in these functions resolve to someone else's
-- object. pg_catalog first, then evstore, then pg_temp last (temporary
-- objects never shadow anything), as PostgreSQL's documentation of
-- SECURITY DEFINER functions recommends for any function.
DO $mig$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'evstore'
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, evstore, pg_temp', f);
    END LOOP;
END
$mig$;
