// The browser bridge module (realtime/pglitebridge/bridge.mjs) tracks which channels each virtual
// connection LISTENs on from the statements it sends (docs/pglite.md §Notifications). Only whole
// top-level LISTEN / UNLISTEN statements count: one inside a string literal, a comment or a
// dollar-quoted body must not subscribe the connection. The Node bridge
// (cmd/pglite-bridge/fanout.mjs) follows the same rule; both are checked on the same statements.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { trackListens } from '../../realtime/pglitebridge/bridge.mjs'
import { listenStatements } from '../../cmd/pglite-bridge/fanout.mjs'

/** Runs each statement text through trackListens on one set, as one connection would send them. */
function browserChannels(...texts) {
  const listens = new Set()
  for (const t of texts) trackListens(t, listens)
  return [...listens].sort()
}

/** The same for the Node bridge, fed simple-protocol Query messages. */
function nodeChannels(...texts) {
  const listens = new Set()
  for (const t of texts) {
    const sql = new TextEncoder().encode(t)
    const msg = new Uint8Array(1 + 4 + sql.length + 1)
    msg[0] = 0x51 // 'Q'
    new DataView(msg.buffer).setInt32(1, 4 + sql.length + 1)
    msg.set(sql, 5)
    for (const st of listenStatements(msg)) {
      if (st.listen) listens.add(st.channel)
      else if (st.channel === '*') listens.clear()
      else listens.delete(st.channel)
    }
  }
  return [...listens].sort()
}

const cases = [
  { name: 'plain LISTEN, bare names fold to lower case', sql: ['LISTEN realtime_changes', 'listen Other'], want: ['other', 'realtime_changes'] },
  { name: 'quoted names kept as written', sql: ['LISTEN "Mixed ""Case"""'], want: ['Mixed "Case"'] },
  { name: 'several statements in one message', sql: ['SELECT 1; LISTEN a ;LISTEN b; UNLISTEN a'], want: ['b'] },
  { name: 'UNLISTEN * clears', sql: ['LISTEN a; LISTEN b', 'UNLISTEN *'], want: [] },
  { name: 'inside a string literal', sql: ["SELECT 'LISTEN in_literal'", "SELECT 'x;LISTEN in_literal2;'"], want: [] },
  { name: "inside a string literal with a doubled quote", sql: ["SELECT 'it''s; LISTEN in_literal'"], want: [] },
  { name: 'inside comments', sql: ['-- LISTEN in_line_comment\nSELECT 1', '/* ; LISTEN in_block_comment; */ SELECT 1'], want: [] },
  { name: 'after a comment', sql: ['/* note */ LISTEN after_comment', '-- note\nLISTEN after_line_comment'], want: ['after_comment', 'after_line_comment'] },
  { name: 'a word that only contains LISTEN', sql: ['SELECT relisten FROM t', 'SELECT 1 AS listen'], want: [] },
  { name: 'UNLISTEN inside a literal keeps the subscription', sql: ['LISTEN kept', "SELECT 'UNLISTEN kept'"], want: ['kept'] },
]

describe('browser bridge: LISTEN tracking', () => {
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(browserChannels(...c.sql), c.want)
      assert.deepEqual(nodeChannels(...c.sql), c.want, 'the Node bridge disagrees')
    })
  }

  // Beyond the Node bridge's rule: PostgreSQL-only quoting forms.
  test('dollar-quoted bodies, E strings with escaped quotes and nested comments', () => {
    assert.deepEqual(browserChannels('DO $$ BEGIN PERFORM 1; END $$; SELECT $tag$ ; LISTEN in_dollar; $tag$'), [])
    assert.deepEqual(browserChannels("SELECT E'\\'; LISTEN in_e_string; '"), [])
    assert.deepEqual(browserChannels('/* a /* nested */ ; LISTEN in_nested; */ LISTEN after_nested'), ['after_nested'])
    assert.deepEqual(browserChannels('SELECT $1::text; LISTEN after_param'), ['after_param'])
  })
})
