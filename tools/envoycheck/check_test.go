package envoycheck

import (
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// TestFixtures loads every file in testdata and expects exactly the one
// problem the fixture was written to have (minimal_valid.yaml: none). Each
// broken fixture is minimal_valid.yaml with one defect, so a check that
// stopped working, or one that fired for the wrong reason, fails here.
func TestFixtures(t *testing.T) {
	cases := []struct {
		file string
		rule Rule   // "" means no problem at all
		text string // a fragment the message must contain
	}{
		{"minimal_valid.yaml", "", ""},
		{"bad_yaml.yaml", RuleYAML, "yaml"},
		{"unknown_field.yaml", RuleSchema, "timeout_ms"},
		{"unresolved_type.yaml", RuleUnresolvedType, "envoy.extensions.filters.http.nope.v3.Nope"},
		{"invalid_in_typed_config.yaml", RuleValidate, "StatPrefix"},
		{"invalid_bootstrap.yaml", RuleValidate, "ConnectTimeout"},
		{"undefined_cluster.yaml", RuleUndefinedCluster, `"realtime"`},
		{"router_not_last.yaml", RuleRouterLast, "must be last"},
		{"no_router.yaml", RuleRouterLast, "no router filter"},
		{"negative_duration.yaml", RuleNegativeDuration, "-1s"},
		{"bad_regex.yaml", RuleRegex, "^(GET|HEAD$"},
		{"logs_query.yaml", RuleAccessLogSecret, "%REQ(:PATH)%"},
		{"admin_public.yaml", RuleAdminExposed, "0.0.0.0"},
		{"bad_retry_on.yaml", RuleRetryOn, "connect-failures"},
		{"duplicate_cluster.yaml", RuleDuplicateName, `"app"`},
		{"deprecated_field.yaml", RuleDeprecated, "VirtualHost.cors"},
	}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(cases) {
		t.Errorf("testdata has %d fixtures, the table %d: every fixture needs a row", len(files), len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			_, probs := CheckFile(filepath.Join("testdata", tc.file))
			if tc.rule == "" {
				for _, p := range probs {
					t.Errorf("unexpected problem: %s", p)
				}
				return
			}
			if len(probs) != 1 {
				t.Fatalf("want exactly one %s problem, got %d:\n%s", tc.rule, len(probs), render(probs))
			}
			if probs[0].Rule != tc.rule {
				t.Fatalf("want rule %s, got %s", tc.rule, probs[0])
			}
			if !strings.Contains(probs[0].String(), tc.text) {
				t.Fatalf("problem %q does not mention %q", probs[0], tc.text)
			}
		})
	}
}

func render(probs []Problem) string {
	var b strings.Builder
	for _, p := range probs {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

// TestBootstrapValidateAllIsNotEnough shows why Check exists: the
// bootstrap's generated ValidateAll accepts each of these broken fixtures,
// because what is wrong sits behind a typed_config or is not expressible as
// a validation rule.
func TestBootstrapValidateAllIsNotEnough(t *testing.T) {
	for _, f := range []string{
		"invalid_in_typed_config.yaml", "undefined_cluster.yaml", "router_not_last.yaml",
		"no_router.yaml", "negative_duration.yaml", "bad_regex.yaml", "logs_query.yaml",
	} {
		b, err := LoadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := b.ValidateAll(); err != nil {
			t.Errorf("%s: Bootstrap.ValidateAll now reports %v; this fixture no longer shows the gap", f, err)
		}
		if probs := Check(b); len(probs) == 0 {
			t.Errorf("%s: Check found nothing", f)
		}
	}
}

func TestLeaksSecret(t *testing.T) {
	cases := []struct {
		format string
		leaks  bool
	}{
		{"%PATH(NQ:ORIG_OR_PATH)%", false},
		{"%PATH(NQ)%", false},
		{"%PATH%", true},
		{"%PATH(WQ:PATH)%", true},
		{"%REQ(:PATH)%", true},
		{"%REQ(:path)%", true},
		{"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):256%", true},
		{"%REQ(AUTHORIZATION)%", true},
		{"%REQ(apikey)%", true},
		{"%QUERY_PARAM(apikey)%", true},
		{"%REQ(USER-AGENT)%", false},
		{"%REQ(:METHOD)% %RESPONSE_CODE%", false},
	}
	for _, tc := range cases {
		c := &checker{}
		c.formatString("f", textFormat(tc.format))
		if got := len(c.problems) > 0; got != tc.leaks {
			t.Errorf("%s: leaks=%v, want %v (%v)", tc.format, got, tc.leaks, c.problems)
		}
	}
}

func textFormat(s string) *corev3.SubstitutionFormatString {
	return &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_TextFormatSource{
			TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}},
		},
	}
}
