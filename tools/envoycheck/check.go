package envoycheck

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// RouterType is the type URL of the router HTTP filter's config.
const RouterType = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

// CheckYAML loads doc with [Load] and checks it with [Check]. Load failures
// come back as problems too, with a nil Bootstrap.
func CheckYAML(doc []byte) (*bootstrapv3.Bootstrap, []Problem) {
	b, err := Load(doc)
	if err != nil {
		return nil, problemsOf(err)
	}
	return b, Check(b)
}

// CheckFile is [CheckYAML] on the contents of a file.
func CheckFile(path string) (*bootstrapv3.Bootstrap, []Problem) {
	b, err := LoadFile(path)
	if err != nil {
		return nil, problemsOf(err)
	}
	return b, Check(b)
}

func problemsOf(err error) []Problem {
	var e *Error
	if errors.As(err, &e) {
		return e.Problems
	}
	return []Problem{{Rule: RuleYAML, Msg: err.Error()}}
}

// Check validates b and returns every problem found, sorted by path; nil
// means none. It runs ValidateAll on b and on every message unpacked from a
// google.protobuf.Any (recursively), then the rules listed under [Rule]. It
// does not modify b.
func Check(b *bootstrapv3.Bootstrap) []Problem {
	c := &checker{}
	c.validate("", b)
	c.message("", b.ProtoReflect())
	c.clusters(b)
	c.admin(b)
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].Path < c.problems[j].Path })
	return c.problems
}

// checker accumulates problems during one walk. Not safe for concurrent use.
type checker struct {
	problems []Problem
	// clusterRefs are the clusters named by routes and TCP proxies, with
	// the path of each reference.
	clusterRefs []clusterRef
}

type clusterRef struct {
	name, path string
}

func (c *checker) add(rule Rule, path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Rule: rule, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// validate runs the protoc-gen-validate rules of m and its non-Any
// sub-messages.
func (c *checker) validate(path string, m proto.Message) {
	v, ok := m.(interface{ ValidateAll() error })
	if !ok {
		return
	}
	err := v.ValidateAll()
	if err == nil {
		return
	}
	var multi interface{ AllErrors() []error }
	if errors.As(err, &multi) {
		for _, e := range multi.AllErrors() {
			c.add(RuleValidate, path, "%v", e)
		}
		return
	}
	c.add(RuleValidate, path, "%v", err)
}

// message visits m and everything below it, unpacking Any values.
func (c *checker) message(path string, m protoreflect.Message) {
	if m.Descriptor().FullName() == "google.protobuf.Any" {
		c.anyValue(path, m)
		return
	}
	c.visit(path, m)
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		fpath := joinPath(path, string(fd.Name()))
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
			c.add(RuleDeprecated, fpath, "field %s is deprecated in the Envoy API", fd.FullName())
		}
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			for j := 0; j < l.Len(); j++ {
				c.value(fpath+"["+strconv.Itoa(j)+"]", fd, l.Get(j))
			}
		case fd.IsMap():
			mv := v.Map()
			keys := make([]string, 0, mv.Len())
			byKey := map[string]protoreflect.Value{}
			mv.Range(func(k protoreflect.MapKey, val protoreflect.Value) bool {
				ks := k.String()
				keys = append(keys, ks)
				byKey[ks] = val
				return true
			})
			sort.Strings(keys)
			for _, k := range keys {
				c.value(fpath+"["+strconv.Quote(k)+"]", fd.MapValue(), byKey[k])
			}
		default:
			c.value(fpath, fd, v)
		}
	}
}

// value visits one singular value (a list element, a map value or a field).
func (c *checker) value(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		c.message(path, v.Message())
	case protoreflect.EnumKind:
		ev := fd.Enum().Values().ByNumber(v.Enum())
		if ev == nil {
			return
		}
		if opts, ok := ev.Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
			c.add(RuleDeprecated, path, "enum value %s is deprecated in the Envoy API", ev.FullName())
		}
	}
}

// anyValue unpacks an Any, validates the result and walks into it.
func (c *checker) anyValue(path string, m protoreflect.Message) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		c.add(RuleUnresolvedType, path, "cannot unpack %q: %v", a.GetTypeUrl(), err)
		return
	}
	ipath := path + "<" + string(inner.ProtoReflect().Descriptor().Name()) + ">"
	c.validate(ipath, inner)
	c.message(ipath, inner.ProtoReflect())
}

// visit applies the per-type rules to one message.
func (c *checker) visit(path string, m protoreflect.Message) {
	switch x := m.Interface().(type) {
	case *durationpb.Duration:
		if x.GetSeconds() < 0 || x.GetNanos() < 0 {
			c.add(RuleNegativeDuration, path, "duration %s is negative", x.AsDuration())
		}
	case *matcherv3.RegexMatcher:
		if _, err := regexp.Compile(x.GetRegex()); err != nil {
			c.add(RuleRegex, path, "regex %q does not compile: %v", x.GetRegex(), err)
		}
	case *corev3.SubstitutionFormatString:
		c.formatString(path, x)
	case *routev3.RouteAction:
		if n := x.GetCluster(); n != "" {
			c.clusterRefs = append(c.clusterRefs, clusterRef{n, joinPath(path, "cluster")})
		}
		for i, w := range x.GetWeightedClusters().GetClusters() {
			if w.GetName() != "" {
				c.clusterRefs = append(c.clusterRefs, clusterRef{w.GetName(), fmt.Sprintf("%s.weighted_clusters.clusters[%d]", path, i)})
			}
		}
		for i, mp := range x.GetRequestMirrorPolicies() {
			if mp.GetCluster() != "" {
				c.clusterRefs = append(c.clusterRefs, clusterRef{mp.GetCluster(), fmt.Sprintf("%s.request_mirror_policies[%d]", path, i)})
			}
		}
	case *tcpproxyv3.TcpProxy:
		if n := x.GetCluster(); n != "" {
			c.clusterRefs = append(c.clusterRefs, clusterRef{n, joinPath(path, "cluster")})
		}
	case *routev3.RetryPolicy:
		c.retryOn(path, x.GetRetryOn())
	case *hcmv3.HttpConnectionManager:
		c.routerLast(joinPath(path, "http_filters"), x.GetHttpFilters())
		for i, u := range x.GetUpgradeConfigs() {
			if len(u.GetFilters()) > 0 {
				c.routerLast(fmt.Sprintf("%s.upgrade_configs[%d].filters", path, i), u.GetFilters())
			}
		}
	}
}

// routerLast requires exactly one router filter, in the last position.
func (c *checker) routerLast(path string, filters []*hcmv3.HttpFilter) {
	last := -1
	for i, f := range filters {
		if isRouter(f) {
			if last >= 0 {
				c.add(RuleRouterLast, fmt.Sprintf("%s[%d]", path, i), "second router filter (the first is [%d])", last)
			}
			last = i
		}
	}
	switch {
	case last < 0:
		c.add(RuleRouterLast, path, "no router filter (envoy.filters.http.router): requests would never be forwarded")
	case last >= 0 && last != len(filters)-1:
		c.add(RuleRouterLast, fmt.Sprintf("%s[%d]", path, last), "the router filter must be last; %d filter(s) after it would never run", len(filters)-1-last)
	}
}

func isRouter(f *hcmv3.HttpFilter) bool {
	if tc := f.GetTypedConfig(); tc != nil {
		return tc.GetTypeUrl() == RouterType
	}
	return f.GetName() == "envoy.filters.http.router"
}

// retryConditions are the retry_on values Envoy accepts (HTTP and gRPC).
var retryConditions = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true,
	"connect-failure": true, "envoy-ratelimited": true, "retriable-4xx": true,
	"refused-stream": true, "retriable-status-codes": true, "retriable-headers": true,
	"http3-post-connect-failure": true,
	"cancelled":                  true, "deadline-exceeded": true, "internal": true,
	"resource-exhausted": true, "unavailable": true,
}

func (c *checker) retryOn(path, retryOn string) {
	if strings.TrimSpace(retryOn) == "" {
		return
	}
	for _, cond := range strings.Split(retryOn, ",") {
		cond = strings.TrimSpace(cond)
		if !retryConditions[cond] {
			c.add(RuleRetryOn, joinPath(path, "retry_on"), "unknown retry condition %q", cond)
		}
	}
}

// formatCommand matches one substitution command: %NAME%, %NAME(args)% or
// %NAME(args):len%.
var formatCommand = regexp.MustCompile(`%([A-Z0-9_]+)(?:\(([^)]*)\))?(?::[0-9]+)?%`)

// secretHeaders are request headers that carry credentials.
var secretHeaders = map[string]bool{
	"authorization": true, "apikey": true, "x-api-key": true, "cookie": true,
	"proxy-authorization": true,
}

// formatString flags access log commands that would write the query string
// or a credential header.
func (c *checker) formatString(path string, f *corev3.SubstitutionFormatString) {
	var texts []string
	if t := f.GetTextFormat(); t != "" {
		texts = append(texts, t)
	}
	if t := f.GetTextFormatSource().GetInlineString(); t != "" {
		texts = append(texts, t)
	}
	texts = structStrings(f.GetJsonFormat(), texts)
	for _, t := range texts {
		for _, m := range formatCommand.FindAllStringSubmatch(t, -1) {
			if why := leaksSecret(m[1], m[2]); why != "" {
				c.add(RuleAccessLogSecret, path, "%s %s", m[0], why)
			}
		}
	}
}

// leaksSecret explains why a command leaks, or returns "".
func leaksSecret(cmd, args string) string {
	switch cmd {
	case "REQ", "TRAILER":
		for _, h := range strings.Split(args, "?") {
			h = strings.ToLower(strings.TrimSpace(h))
			if h == ":path" || h == "x-envoy-original-path" {
				return "logs the query string (clients put apikey there); use %PATH(NQ:ORIG_OR_PATH)%"
			}
			if secretHeaders[h] {
				return "logs a credential header"
			}
		}
	case "PATH":
		mode, _, _ := strings.Cut(args, ":")
		if mode != "NQ" {
			return "logs the query string (clients put apikey there); use %PATH(NQ:ORIG_OR_PATH)%"
		}
	case "QUERY_PARAM", "QUERY_PARAMS":
		return "logs query parameters (clients put apikey there)"
	}
	return ""
}

func structStrings(s *structpb.Struct, out []string) []string {
	for _, k := range sortedKeys(s.GetFields()) {
		out = valueStrings(s.GetFields()[k], out)
	}
	return out
}

func valueStrings(v *structpb.Value, out []string) []string {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		out = append(out, k.StringValue)
	case *structpb.Value_StructValue:
		out = structStrings(k.StructValue, out)
	case *structpb.Value_ListValue:
		for _, e := range k.ListValue.GetValues() {
			out = valueStrings(e, out)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// clusters checks names for uniqueness and references for existence. With
// CDS configured the cluster set is not known statically, so references are
// not checked.
func (c *checker) clusters(b *bootstrapv3.Bootstrap) {
	defined := map[string]int{}
	for i, cl := range b.GetStaticResources().GetClusters() {
		if j, dup := defined[cl.GetName()]; dup {
			c.add(RuleDuplicateName, fmt.Sprintf("static_resources.clusters[%d]", i), "cluster %q is also defined at clusters[%d]", cl.GetName(), j)
			continue
		}
		defined[cl.GetName()] = i
	}
	listeners := map[string]int{}
	for i, l := range b.GetStaticResources().GetListeners() {
		if j, dup := listeners[l.GetName()]; dup && l.GetName() != "" {
			c.add(RuleDuplicateName, fmt.Sprintf("static_resources.listeners[%d]", i), "listener %q is also defined at listeners[%d]", l.GetName(), j)
			continue
		}
		listeners[l.GetName()] = i
	}
	if b.GetDynamicResources().GetCdsConfig() != nil || b.GetDynamicResources().GetCdsResourcesLocator() != "" {
		return
	}
	for _, r := range c.clusterRefs {
		if _, ok := defined[r.name]; !ok {
			c.add(RuleUndefinedCluster, r.path, "cluster %q is not defined in static_resources.clusters", r.name)
		}
	}
}

// admin requires the admin listener, if any, to be on loopback.
func (c *checker) admin(b *bootstrapv3.Bootstrap) {
	sa := b.GetAdmin().GetAddress().GetSocketAddress()
	if sa == nil {
		return
	}
	host := sa.GetAddress()
	if host == "localhost" {
		return
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return
	}
	c.add(RuleAdminExposed, "admin.address.socket_address.address",
		"admin interface bound to %q: it can drain listeners and dump the config; bind it to 127.0.0.1", host)
}
