// JWT helpers (HS256 via node:crypto) for signing the keys and tokens the server accepts.

import { createHmac, randomUUID } from 'node:crypto'

const b64url = (buf) => Buffer.from(buf).toString('base64url')

/** Current time in whole seconds, as used in `exp`/`iat`. */
export const nowSec = () => Math.floor(Date.now() / 1000)

/**
 * Signs `claims` as a compact JWT. opts.alg: 'HS256' (default), 'HS384', 'HS512' or 'none'
 * (unsigned: empty signature part). opts.header: extra header fields.
 */
export function signJwt(claims, secret, opts = {}) {
  const alg = opts.alg ?? 'HS256'
  const header = { alg, typ: 'JWT', ...(opts.header || {}) }
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`
  if (alg === 'none') return `${signingInput}.`
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg]
  if (!hash) throw new Error(`signJwt: unsupported alg ${alg}`)
  const sig = createHmac(hash, secret).update(signingInput).digest()
  return `${signingInput}.${b64url(sig)}`
}

/** An anon API key: {role:'anon', iss:'supabase', iat, exp}. opts.expIn seconds (default 1 h). */
export function anonKey(secret, opts = {}) {
  const iat = nowSec()
  return signJwt(
    { role: 'anon', iss: 'supabase', iat, exp: iat + (opts.expIn ?? 3600), ...(opts.claims || {}) },
    secret,
    opts
  )
}

/**
 * A user access token: {role:'authenticated', sub, exp}. opts.sub (default random uuid),
 * opts.expIn seconds from now (may be negative for an expired token; default 1 h),
 * opts.exp absolute exp (wins over expIn).
 */
export function userToken(secret, opts = {}) {
  const iat = nowSec()
  const exp = opts.exp ?? iat + (opts.expIn ?? 3600)
  return signJwt(
    {
      role: 'authenticated',
      sub: opts.sub ?? randomUUID(),
      aud: 'authenticated',
      iat: Math.min(iat, exp - 1),
      exp,
      ...(opts.claims || {}),
    },
    secret,
    opts
  )
}
