-- Migration 2: storage of client broadcasts sent with `persist` (beyond
-- Supabase's server, docs/protocol.md §9.5). origin = 'client' marks them so
-- the change stream does not deliver them a second time; expires_at is the
-- end of their TTL (NULL: kept until the partition is dropped).
ALTER TABLE realtime.messages ADD COLUMN IF NOT EXISTS expires_at timestamp;
ALTER TABLE realtime.messages ADD COLUMN IF NOT EXISTS origin text;
