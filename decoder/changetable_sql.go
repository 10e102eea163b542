package decoder

// SQL of the change-table source. Everything lives in the schema
// "realtime"; it is installed idempotently by every session of
// [ChangeTable] and removed with DROP SCHEMA realtime CASCADE (which also
// drops the capture triggers and the event trigger, since they depend on
// its functions).

// notifyChannel is the LISTEN/NOTIFY channel the capture trigger notifies.
const notifyChannel = "realtime_changes"

// captureTrigger is the name of the capture trigger on every captured table.
const captureTrigger = "realtime_capture"

// changeTableInstallSQL creates the change log, the cursor table and the
// functions, and (re)creates the event trigger that keeps the capture
// triggers in step with publications. It runs as one simple-protocol
// message, so it is one implicit transaction.
//
// The capture function is SECURITY DEFINER because writers are often
// unprivileged roles (SET LOCAL ROLE authenticated under RLS), and pins the
// settings that shape to_jsonb's output (time zone, interval style, float
// digits, bytea format) for its own duration only: the session is shared by
// every client of PGlite, so nothing here may change session state.
//
// A notification carries the whole change when it fits under PostgreSQL's
// 8000-byte payload limit, else only the id; the change log always holds
// the whole row.
const changeTableInstallSQL = `
CREATE SCHEMA IF NOT EXISTS realtime;

CREATE TABLE IF NOT EXISTS realtime.change_log (
  id          bigserial PRIMARY KEY,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  op          "char" NOT NULL,
  new_row     jsonb,
  old_row     jsonb,
  ident       "char",
  xid         xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
  at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE realtime.change_log IS
  'Row changes of published tables, captured by realtime.capture_change() for the realtime service (notify source). Pruned by the service.';

CREATE TABLE IF NOT EXISTS realtime.change_cursor (
  name        text PRIMARY KEY,
  publication text NOT NULL,
  last_id     bigint NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE realtime.change_cursor IS
  'Position of each realtime consumer in realtime.change_log (the last delivered id). Delete the row of a retired consumer, or pruning waits for it.';

-- Further publications a consumer captures besides its own (the realtime.messages
-- publication of Broadcast from the database, docs/protocol.md §9.3).
ALTER TABLE realtime.change_cursor ADD COLUMN IF NOT EXISTS extra_publications text[] NOT NULL DEFAULT '{}';

REVOKE ALL ON realtime.change_log, realtime.change_cursor FROM PUBLIC;

CREATE OR REPLACE FUNCTION realtime.capture_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET "TimeZone" = 'UTC'
SET "DateStyle" = 'ISO, MDY'
SET "IntervalStyle" = 'postgres'
SET extra_float_digits = 1
SET bytea_output = 'hex'
AS $fn$
DECLARE
  n   jsonb;
  o   jsonb;
  op  "char" := left(TG_OP, 1);
  ri  "char";
  cid bigint;
  p   text;
BEGIN
  IF TG_OP <> 'DELETE' THEN n := to_jsonb(NEW); END IF;
  IF TG_OP <> 'INSERT' THEN
    o := to_jsonb(OLD);
    SELECT c.relreplident INTO ri FROM pg_class c WHERE c.oid = TG_RELID;
  END IF;
  INSERT INTO realtime.change_log (schema_name, table_name, op, new_row, old_row, ident)
  VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, op, n, o, ri)
  RETURNING id INTO cid;
  p := jsonb_build_object('id', cid, 'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME,
         'op', op::text, 'ident', ri::text, 'xid', pg_current_xact_id()::text,
         'ts', (extract(epoch FROM now()) * 1000000)::int8,
         'new', n, 'old', o)::text;
  IF octet_length(p) >= 8000 THEN
    p := jsonb_build_object('id', cid)::text;
  END IF;
  PERFORM pg_notify('` + notifyChannel + `', p);
  RETURN NULL;
END
$fn$;

-- Puts the capture trigger on every table of the publications that have a
-- consumer (a row in realtime.change_cursor) and takes it off tables that
-- left them. Returns the number of triggers created or dropped.
CREATE OR REPLACE FUNCTION realtime.sync_capture() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  r record;
  k integer := 0;
BEGIN
  FOR r IN
    SELECT DISTINCT c.oid::regclass AS rel
    FROM pg_publication_tables pt
    JOIN pg_namespace ns ON ns.nspname = pt.schemaname
    JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = pt.tablename
    WHERE pt.pubname IN (SELECT publication FROM realtime.change_cursor
                       UNION ALL SELECT unnest(extra_publications) FROM realtime.change_cursor)
      AND c.relkind = 'r'
      AND NOT (ns.nspname = 'realtime' AND c.relname IN ('change_log', 'change_cursor'))
      AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = '` + captureTrigger + `')
  LOOP
    EXECUTE format('CREATE TRIGGER ` + captureTrigger + ` AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION realtime.capture_change()', r.rel);
    k := k + 1;
  END LOOP;
  FOR r IN
    SELECT t.tgrelid::regclass AS rel
    FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace ns ON ns.oid = c.relnamespace
    WHERE t.tgname = '` + captureTrigger + `'
      AND t.tgfoid = 'realtime.capture_change()'::regprocedure
      AND t.tgparentid = 0
      AND NOT EXISTS (
        SELECT 1 FROM pg_publication_tables pt
        WHERE pt.pubname IN (SELECT publication FROM realtime.change_cursor
                       UNION ALL SELECT unnest(extra_publications) FROM realtime.change_cursor)
          AND pt.schemaname = ns.nspname AND pt.tablename = c.relname)
  LOOP
    EXECUTE format('DROP TRIGGER ` + captureTrigger + ` ON %s', r.rel);
    k := k + 1;
  END LOOP;
  RETURN k;
END
$fn$;

-- Runs sync_capture() at the end of DDL that can change what a publication
-- holds, in the same transaction, so a table is captured from the moment it
-- is published. It never fails the DDL.
CREATE OR REPLACE FUNCTION realtime.capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM realtime.sync_capture();
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'realtime: could not update the change capture triggers: %', SQLERRM;
END
$fn$;

REVOKE ALL ON FUNCTION realtime.capture_change(), realtime.sync_capture(), realtime.capture_ddl() FROM PUBLIC;

DO $do$
BEGIN
  DROP EVENT TRIGGER IF EXISTS realtime_capture_ddl;
  CREATE EVENT TRIGGER realtime_capture_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE PUBLICATION', 'ALTER PUBLICATION', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
    EXECUTE FUNCTION realtime.capture_ddl();
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'realtime: no event trigger (needs superuser); tables added to the publication are captured at the next poll of the catalog';
END
$do$;
`

// changeTableRegisterSQL registers a consumer: its cursor starts at the end of
// the change log, like a new replication slot. $1 cursor name, $2
// publication, $3 extra publications.
const changeTableRegisterSQL = `INSERT INTO realtime.change_cursor (name, publication, extra_publications, last_id)
SELECT $1, $2, $3::text[], coalesce((SELECT max(id) FROM realtime.change_log), 0)
ON CONFLICT (name) DO UPDATE SET publication = EXCLUDED.publication, extra_publications = EXCLUDED.extra_publications
RETURNING last_id`

// changeTableSyncSQL installs missing capture triggers.
const changeTableSyncSQL = `SELECT realtime.sync_capture()`

// changeTablePublicationSQL reads the publication's actions. $1 publication.
const changeTablePublicationSQL = `SELECT pubinsert, pubupdate, pubdelete FROM pg_catalog.pg_publication WHERE pubname = $1`

// changeTableRelationsSQL lists the published columns of every table of the
// publication in attnum order, with the replica identity key as pgoutput
// flags it: the primary key (default), the identity index (index), every
// column (full) or none (nothing), and whether the table is in the main
// publication. $1 every captured publication, $2 the main one.
const changeTableRelationsSQL = `SELECT c.oid, ns.nspname::text, c.relname::text, c.relreplident::text,
  a.attname::text, a.atttypid,
  CASE c.relreplident
    WHEN 'f' THEN true
    WHEN 'n' THEN false
    ELSE coalesce((SELECT a.attnum = ANY (i.indkey::int2[]) FROM pg_catalog.pg_index i
                   WHERE i.indrelid = c.oid AND CASE c.relreplident WHEN 'i' THEN i.indisreplident ELSE i.indisprimary END
                   LIMIT 1), false)
  END,
  a.attname = ANY (pt.attnames), pt.main
FROM (SELECT schemaname, tablename, attnames, bool_or(pubname = $2) AS main FROM pg_catalog.pg_publication_tables
      WHERE pubname = ANY ($1::text[]) GROUP BY schemaname, tablename, attnames) pt
JOIN pg_catalog.pg_namespace ns ON ns.nspname = pt.schemaname
JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = pt.tablename
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.oid, a.attnum`

// changeTableFetchSQL reads the changes after a position. $1 position, $2 limit.
const changeTableFetchSQL = `SELECT id, schema_name, table_name, op::text, coalesce(ident::text, ''), xid::text,
  (extract(epoch FROM at) * 1000000)::int8, new_row::text, old_row::text
FROM realtime.change_log WHERE id > $1 ORDER BY id LIMIT $2`

// changeTableHeadSQL reads the newest id handed out by the change log.
const changeTableHeadSQL = `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM realtime.change_log_id_seq`
