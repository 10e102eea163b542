-- Grants as Supabase's, to those of its roles that exist here.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('GRANT USAGE ON SCHEMA realtime TO %I', r);
      EXECUTE format('GRANT SELECT, INSERT, UPDATE ON realtime.messages TO %I', r);
    END IF;
  END LOOP;
END
$$;
