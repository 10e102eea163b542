package projects

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Supabase's tenant defaults (docs/projects.md "Limits").
const (
	DefaultMaxConcurrentUsers         = 200
	DefaultMaxEventsPerSecond         = 100
	DefaultMaxBytesPerSecond          = 100000
	DefaultMaxChannelsPerClient       = 100
	DefaultMaxJoinsPerSecond          = 100
	DefaultMaxPresenceEventsPerSecond = 1000
	DefaultMaxPayloadSizeInKB         = 3000
	DefaultClientPresenceEventsPerWin = 5
	DefaultClientPresenceWindowMillis = 30000
	DefaultPublication                = "supabase_realtime"
	slotPrefix                        = "supabase_realtime_slot_"
	maxRefLen                         = 63
	sourceLogical, sourceNotify       = "logical", "notify"
	fieldRef, fieldJWT, fieldDB       = "ref", "jwt_secret", "db_url"
	fieldSource, fieldSlot, fieldPub  = "source", "slot", "publication"
	msgBlank                          = "can't be blank"
	msgInvalid                        = "is invalid"
	msgPositive                       = "must be greater than 0"
	msgSecretOrJWKS                   = "either jwt_secret or jwt_jwks must be provided"
)

var refPattern = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// Limits are a project's limits, named as Supabase's tenant fields. Zero
// values take the defaults above (Normalize).
type Limits struct {
	// MaxConcurrentUsers caps the project's open WebSocket connections and
	// SSE streams together.
	MaxConcurrentUsers int `yaml:"max_concurrent_users" json:"max_concurrent_users,omitempty"`
	// MaxChannelsPerClient caps the channels one connection joins.
	MaxChannelsPerClient int `yaml:"max_channels_per_client" json:"max_channels_per_client,omitempty"`
	// MaxJoinsPerSecond is the project's join rate and each of its
	// connections' (docs/projects.md "Limits").
	MaxJoinsPerSecond int `yaml:"max_joins_per_second" json:"max_joins_per_second,omitempty"`
	// MaxEventsPerSecond caps the broadcasts the project's clients send per second (docs/projects.md "Limits").
	MaxEventsPerSecond int `yaml:"max_events_per_second" json:"max_events_per_second,omitempty"`
	// MaxBytesPerSecond is the project's byte rate (stored only, as Supabase).
	MaxBytesPerSecond int `yaml:"max_bytes_per_second" json:"max_bytes_per_second,omitempty"`
	// MaxPresenceEventsPerSecond caps the project's presence pushes per second (docs/projects.md "Limits").
	MaxPresenceEventsPerSecond int `yaml:"max_presence_events_per_second" json:"max_presence_events_per_second,omitempty"`
	// MaxPayloadSizeInKB caps a broadcast or presence payload, in units of 1000 bytes.
	MaxPayloadSizeInKB int `yaml:"max_payload_size_in_kb" json:"max_payload_size_in_kb,omitempty"`
	// MaxClientPresenceEventsPerWindow and ClientPresenceWindowMS are the
	// per-channel presence push limit.
	MaxClientPresenceEventsPerWindow int `yaml:"max_client_presence_events_per_window" json:"max_client_presence_events_per_window,omitempty"`
	ClientPresenceWindowMS           int `yaml:"client_presence_window_ms" json:"client_presence_window_ms,omitempty"`
}

// Project is one project's record: which database it streams, which keys
// sign its tokens, and its limits.
type Project struct {
	// Ref is the project reference, [a-z0-9-]{1,63}: the host's first label.
	Ref string `yaml:"ref" json:"ref,omitempty"`
	// DBURL is the project's database; empty serves broadcast and presence only.
	DBURL string `yaml:"db_url" json:"db_url,omitempty"`
	// Source is the change source: logical (replication slot) or notify
	// (change table, for PGlite).
	Source string `yaml:"source" json:"source,omitempty"`
	// Slot is the logical replication slot; slot names are cluster-wide,
	// so the default carries the ref.
	Slot string `yaml:"slot" json:"slot,omitempty"`
	// Publication names the published tables.
	Publication string `yaml:"publication" json:"publication,omitempty"`
	// JWTSecret signs HS256/384/512 tokens; never returned by any API.
	JWTSecret string `yaml:"jwt_secret" json:"jwt_secret,omitempty"`
	// JWTJWKS is a JWK Set document ({"keys":[...]}) for the other algorithms.
	JWTJWKS string `yaml:"jwt_jwks" json:"jwt_jwks,omitempty"`
	// PrivateOnly refuses public channel joins.
	PrivateOnly bool `yaml:"private_only" json:"private_only,omitempty"`
	// Suspend refuses every connection and request of the project.
	Suspend bool `yaml:"suspend" json:"suspend,omitempty"`
	Limits  `yaml:",inline"`
}

// FieldErrors maps a field name to its validation messages: the "errors"
// object of a 422 answer (docs/projects.md).
type FieldErrors map[string][]string

func (e FieldErrors) add(field, msg string) { e[field] = append(e[field], msg) }

// Error lists the fields and messages in a stable order.
func (e FieldErrors) Error() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+strings.Join(e[k], ", "))
	}
	return strings.Join(parts, "; ")
}

// Normalize fills defaults: source logical, publication supabase_realtime,
// slot supabase_realtime_slot_<ref>, Supabase's limits.
func (p *Project) Normalize() {
	if p.Source == "" {
		p.Source = sourceLogical
	}
	if p.Publication == "" {
		p.Publication = DefaultPublication
	}
	if p.Slot == "" {
		p.Slot = slotPrefix + strings.ReplaceAll(p.Ref, "-", "_")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	l := &p.Limits
	def(&l.MaxConcurrentUsers, DefaultMaxConcurrentUsers)
	def(&l.MaxChannelsPerClient, DefaultMaxChannelsPerClient)
	def(&l.MaxJoinsPerSecond, DefaultMaxJoinsPerSecond)
	def(&l.MaxEventsPerSecond, DefaultMaxEventsPerSecond)
	def(&l.MaxBytesPerSecond, DefaultMaxBytesPerSecond)
	def(&l.MaxPresenceEventsPerSecond, DefaultMaxPresenceEventsPerSecond)
	def(&l.MaxPayloadSizeInKB, DefaultMaxPayloadSizeInKB)
	def(&l.MaxClientPresenceEventsPerWindow, DefaultClientPresenceEventsPerWin)
	def(&l.ClientPresenceWindowMS, DefaultClientPresenceWindowMillis)
}

// Validate checks a normalized project; the error, if any, is FieldErrors.
func (p *Project) Validate() error {
	errs := FieldErrors{}
	switch {
	case p.Ref == "":
		errs.add(fieldRef, msgBlank)
	case !ValidRef(p.Ref):
		errs.add(fieldRef, msgInvalid)
	}
	if p.JWTSecret == "" && p.JWTJWKS == "" {
		errs.add(fieldJWT, msgSecretOrJWKS)
	}
	if p.JWTJWKS != "" && !json.Valid([]byte(p.JWTJWKS)) {
		errs.add("jwt_jwks", msgInvalid)
	}
	if p.Source != sourceLogical && p.Source != sourceNotify {
		errs.add(fieldSource, "must be logical or notify")
	}
	if strings.ContainsAny(p.Publication, `"`) {
		errs.add(fieldPub, msgInvalid)
	}
	if strings.ContainsAny(p.Slot, `"' `) || len(p.Slot) > 63 {
		errs.add(fieldSlot, msgInvalid)
	}
	if strings.HasPrefix(p.DBURL, "pglite-bridge:") {
		errs.add(fieldDB, "pglite-bridge:// is only available to the flag-configured project")
	}
	for name, v := range map[string]int{
		"max_concurrent_users": p.MaxConcurrentUsers, "max_channels_per_client": p.MaxChannelsPerClient,
		"max_joins_per_second": p.MaxJoinsPerSecond, "max_events_per_second": p.MaxEventsPerSecond,
		"max_bytes_per_second": p.MaxBytesPerSecond, "max_presence_events_per_second": p.MaxPresenceEventsPerSecond,
		"max_payload_size_in_kb": p.MaxPayloadSizeInKB, "max_client_presence_events_per_window": p.MaxClientPresenceEventsPerWindow,
		"client_presence_window_ms": p.ClientPresenceWindowMS,
	} {
		if v < 0 {
			errs.add(name, msgPositive)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// ValidRef reports whether ref is a well-formed project reference.
func ValidRef(ref string) bool { return len(ref) <= maxRefLen && refPattern.MatchString(ref) }

// MaxPayloadBytes is the payload limit in bytes (1 kB = 1000 bytes).
func (l Limits) MaxPayloadBytes() int { return l.MaxPayloadSizeInKB * 1000 }

// String names the project without its secrets (for logs).
func (p Project) String() string {
	return fmt.Sprintf("project %s (source %s, database %t)", p.Ref, p.Source, p.DBURL != "")
}
