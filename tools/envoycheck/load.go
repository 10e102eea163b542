package envoycheck

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoregistry"
	"sigs.k8s.io/yaml"
)

// Rule names one kind of problem. Tests and callers branch on it; the
// message text is for people.
type Rule string

// The rules. The first four come from loading, the rest from [Check].
const (
	// RuleYAML: the document is not valid YAML.
	RuleYAML Rule = "yaml"
	// RuleUnresolvedType: a typed_config names a type that is not linked
	// into this package (import it in extensions.go) or does not exist.
	RuleUnresolvedType Rule = "unresolved-type"
	// RuleSchema: protojson refused the document (unknown field, wrong
	// value type, bad enum name, out-of-range duration).
	RuleSchema Rule = "schema"
	// RuleValidate: a protoc-gen-validate rule failed, on the bootstrap or
	// on a message unpacked from a typed_config.
	RuleValidate Rule = "validate"
	// RuleUndefinedCluster: a route (or TCP proxy) names a cluster that
	// static_resources does not define.
	RuleUndefinedCluster Rule = "undefined-cluster"
	// RuleRouterLast: an HTTP filter chain lacks the router or has a filter
	// after it.
	RuleRouterLast Rule = "router-last"
	// RuleNegativeDuration: a google.protobuf.Duration is negative.
	RuleNegativeDuration Rule = "negative-duration"
	// RuleRegex: a safe_regex does not compile as RE2.
	RuleRegex Rule = "regex"
	// RuleAccessLogSecret: an access log format records the query string
	// (where clients put apikey) or a credential header.
	RuleAccessLogSecret Rule = "access-log-secret"
	// RuleAdminExposed: the admin interface listens on a non-loopback
	// address.
	RuleAdminExposed Rule = "admin-exposed"
	// RuleRetryOn: retry_on names a condition Envoy does not know.
	RuleRetryOn Rule = "retry-on"
	// RuleDuplicateName: two listeners or two clusters share a name.
	RuleDuplicateName Rule = "duplicate-name"
	// RuleDeprecated: a field or enum value marked deprecated in the API is
	// set.
	RuleDeprecated Rule = "deprecated"
)

// Problem is one thing wrong with a config. Path locates it with proto field
// names, list indexes, map keys and, after a typed_config, the unpacked type
// in angle brackets.
type Problem struct {
	Rule Rule
	Path string
	Msg  string
}

// String renders the problem as "rule: path: message".
func (p Problem) String() string {
	if p.Path == "" {
		return fmt.Sprintf("%s: %s", p.Rule, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", p.Rule, p.Path, p.Msg)
}

// Error is returned by [Load] when the document cannot be turned into a
// Bootstrap at all. Problems is never empty.
type Error struct {
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "envoycheck: " + strings.Join(lines, "\n")
}

// Load parses a YAML (or JSON) bootstrap the way Envoy does: YAML to JSON,
// then protojson into a Bootstrap, rejecting unknown fields. Every "@type"
// in the document must resolve to a linked message type; those that do not
// are all reported, with their paths, before parsing is attempted. Errors are
// of type *[Error]. Load does not validate; call [Check].
func Load(doc []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, &Error{Problems: []Problem{{Rule: RuleYAML, Msg: err.Error()}}}
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return nil, &Error{Problems: []Problem{{Rule: RuleYAML, Msg: err.Error()}}}
	}
	if probs := unresolvedTypes("", tree, nil); len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, b); err != nil {
		return nil, &Error{Problems: []Problem{{Rule: RuleSchema, Msg: err.Error()}}}
	}
	return b, nil
}

// LoadFile is [Load] on the contents of a file.
func LoadFile(path string) (*bootstrapv3.Bootstrap, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("envoycheck: read config: %w", err)
	}
	return Load(doc)
}

// unresolvedTypes walks the decoded JSON and reports every "@type" whose
// message type is not in the global registry.
func unresolvedTypes(path string, v any, out []Problem) []Problem {
	switch t := v.(type) {
	case map[string]any:
		if u, ok := t["@type"].(string); ok {
			if _, err := protoregistry.GlobalTypes.FindMessageByURL(u); err != nil {
				out = append(out, Problem{
					Rule: RuleUnresolvedType,
					Path: path,
					Msg: fmt.Sprintf("type %q is not linked into envoycheck (%v): import its Go package in "+
						"tools/envoycheck/extensions.go, or fix the type name", u, err),
				})
			}
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = unresolvedTypes(joinPath(path, k), t[k], out)
		}
	case []any:
		for i, e := range t {
			out = unresolvedTypes(path+"["+strconv.Itoa(i)+"]", e, out)
		}
	}
	return out
}

func joinPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}
