// Package auth verifies the JWTs that clients present (the connection apikey, a join's
// access_token, later access_token pushes) and turns them into [Claims]. Row level security
// checks against the database live in package auth/rls.
//
// A [Verifier] is built once per tenant from a [Config] (shared secret and/or JWKS) and is
// immutable, so it can be shared by all connections. [Verifier.Verify] follows the real
// Supabase Realtime server: URL-decode and strip whitespace, pick a key by alg and kid,
// check the signature, then the `exp`/`iat` claims, then require `role` and `exp`.
//
// Errors are sentinels (ErrMalformed, ErrSignature, ...) or typed values ([*ExpiredError],
// [*SignerKidError]) tested with errors.Is/As. Their Error texts are for logs; the texts sent
// to clients come only from [ConnectMessage], [JoinReason] and [SystemMessage], which
// reproduce docs/protocol.md §1.2, §7.1 and §7.5 exactly. No error or log value ever contains a
// token.
//
// This package imports nothing else from the module.
package auth
