// A row written as soon as supabase-js reports SUBSCRIBED reaches the
// subscriber: the server makes the postgres_changes subscription live
// before it sends the join reply (docs/protocol.md).

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { Collector, subscribed } from '../lib/client.mjs'
import { useDevServer } from '../lib/dev.mjs'

describe('postgres_changes are live when SUBSCRIBED fires', () => {
  const h = useDevServer()

  h.test('an INSERT right after SUBSCRIBED is delivered, for 5 fresh channels in a row', async () => {
    for (let i = 0; i < 5; i++) {
      const c = h.client({ accessToken: async () => h.srv.serviceKey })
      await c.realtime.setAuth(h.srv.serviceKey)
      const ch = c.channel(`ready-${i}`)
      const got = new Collector(`ready-${i}`)
      ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `room=eq.ready-${i}` }, got.push)
      await subscribed(ch)
      await h.sql(`INSERT INTO messages (room, body) VALUES ($1, 'now')`, [`ready-${i}`])
      const p = await got.waitFor((p) => p.new.room === `ready-${i}`, 10000)
      assert.equal(p.new.body, 'now')
    }
  })
})
