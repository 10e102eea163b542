// Package envoycheck loads an Envoy v3 static bootstrap the way Envoy does and
// checks it without an Envoy binary.
//
// Loading follows Envoy's own path: YAML is converted to JSON and the JSON is
// parsed with protojson into envoy.config.bootstrap.v3.Bootstrap, so unknown
// fields, wrong types and unresolvable typed_config types fail here as they
// would in Envoy. [Check] then runs the protoc-gen-validate rules
// (ValidateAll) on the bootstrap and on every message unpacked from a
// google.protobuf.Any. That second part matters: the bootstrap's own
// ValidateAll stops at typed_config, and the connection manager, the routes
// and every filter live behind one, so validating only the bootstrap passes
// configs that Envoy refuses.
//
// On top of the schema, Check adds the rules that proto validation cannot
// express (see [Rule]): every route points at a defined cluster, the router
// is the last HTTP filter, no duration is negative, every RE2 regex compiles,
// access logs never record the query string or credential headers, the admin
// interface listens on loopback only, retry_on names real retry conditions,
// names are unique and no deprecated field is set.
//
// Every typed_config type must be linked into the binary; extensions.go
// imports the extension packages for that. A type that is not linked is
// reported with its path and the package to import.
//
// The package is its own Go module so that go-control-plane never becomes a
// dependency of the service binary.
package envoycheck
