// Package phoenix encodes and decodes the frames of the Phoenix channels
// protocol as spoken by realtime-js: vsn 1.0.0 (JSON objects), vsn 2.0.0 (JSON
// arrays) and the vsn 2.0.0 binary broadcast frames (kind 3 from the client,
// kind 4 to the client).
//
// Decoders never panic on bad input; they return an error that says what was
// wrong. Encoders append to a caller-owned buffer and never fail for valid
// arguments. Nothing here is stateful, so every function is safe for
// concurrent use.
package phoenix
