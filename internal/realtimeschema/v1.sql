-- Migration 1: the `realtime` objects of Supabase Realtime Authorization and
-- Broadcast from the database (docs/protocol.md §9). Every statement is
-- idempotent so that a database where Supabase's own server already created
-- these objects is accepted as it is.
CREATE SCHEMA IF NOT EXISTS realtime;

CREATE TABLE IF NOT EXISTS realtime.messages (
  topic          text NOT NULL,
  extension      text NOT NULL,
  payload        jsonb,
  event          text,
  private        boolean DEFAULT false,
  updated_at     timestamp NOT NULL DEFAULT now(),
  inserted_at    timestamp NOT NULL DEFAULT now(),
  id             uuid NOT NULL DEFAULT gen_random_uuid(),
  CONSTRAINT messages_pkey PRIMARY KEY (id, inserted_at)
) PARTITION BY RANGE (inserted_at);

ALTER TABLE realtime.messages ADD COLUMN IF NOT EXISTS binary_payload bytea;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                  WHERE conname = 'messages_payload_exclusive'
                    AND conrelid = 'realtime.messages'::regclass) THEN
    ALTER TABLE realtime.messages ADD CONSTRAINT messages_payload_exclusive
      CHECK (payload IS NULL OR binary_payload IS NULL) NOT VALID;
  END IF;
END
$$;

CREATE INDEX IF NOT EXISTS messages_inserted_at_topic_index
  ON ONLY realtime.messages (inserted_at DESC, topic)
  WHERE extension = 'broadcast' AND private IS TRUE;

ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY;

-- The topic being checked or sent to, for policies.
CREATE OR REPLACE FUNCTION realtime.topic() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('realtime.topic', true), '')
$$;

-- Stores a JSON broadcast for subscribers of `realtime:<topic>`. Errors never
-- abort the caller: they become a WARNING and the message is lost, as in
-- Supabase.
CREATE OR REPLACE FUNCTION realtime.send(payload jsonb, event text, topic text, private boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  msg_id  uuid := gen_random_uuid();
  body    jsonb;
BEGIN
  BEGIN
    IF jsonb_typeof(payload) = 'object' AND payload ? 'id' THEN
      body := payload;
    ELSE
      body := jsonb_set(payload, '{id}', to_jsonb(msg_id));
    END IF;
    PERFORM set_config('realtime.topic', topic, true);
    INSERT INTO realtime.messages (id, payload, event, topic, private, extension)
    VALUES (msg_id, body, event, topic, private, 'broadcast');
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'WarnSendingBroadcastMessage: %', SQLERRM;
  END;
END
$$;

-- Like send, for a raw byte payload (no id is added).
CREATE OR REPLACE FUNCTION realtime.send_binary(payload bytea, event text, topic text, private boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    PERFORM set_config('realtime.topic', topic, true);
    INSERT INTO realtime.messages (id, binary_payload, event, topic, private, extension)
    VALUES (gen_random_uuid(), payload, event, topic, private, 'broadcast');
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'WarnSendingBroadcastMessage: %', SQLERRM;
  END;
END
$$;

-- Sends a row change as a private broadcast, for row triggers.
CREATE OR REPLACE FUNCTION realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text DEFAULT 'ROW')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  body jsonb;
BEGIN
  IF level = 'STATEMENT' THEN
    RAISE EXCEPTION 'function can only be triggered for each row, not for each statement';
  END IF;
  IF operation NOT IN ('INSERT', 'UPDATE', 'DELETE') THEN
    RAISE EXCEPTION 'Unexpected operation type: %', operation;
  END IF;
  body := jsonb_build_object(
    'old_record', CASE WHEN operation IN ('UPDATE', 'DELETE') THEN to_jsonb(old) END,
    'record',     CASE WHEN operation IN ('INSERT', 'UPDATE') THEN to_jsonb(new) END,
    'operation',  operation,
    'table',      table_name,
    'schema',     table_schema);
  PERFORM realtime.send(body, event_name, topic_name);
EXCEPTION WHEN OTHERS THEN
  RAISE EXCEPTION 'Failed to process the row: %', SQLERRM;
END
$$;

