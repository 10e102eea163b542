package channels

// Permission states of [Permissions].
const (
	// PermGranted: the policy allows it.
	PermGranted = "granted"
	// PermDenied: the policy does not allow it, or its probe failed.
	PermDenied = "denied"
	// PermUnknown: not probed (yet).
	PermUnknown = "unknown"
)

// Permissions is the authorization of one private-channel subscriber as
// the inspector shows it (docs/protocol.md §9.2): each of broadcast and
// presence read and write is granted, denied or unknown, Why explains
// every permission that is not granted, and Failure is the error of the
// newest probe that failed ("" when none did).
type Permissions struct {
	BroadcastRead  string            `json:"broadcast_read"`
	BroadcastWrite string            `json:"broadcast_write"`
	PresenceRead   string            `json:"presence_read"`
	PresenceWrite  string            `json:"presence_write"`
	Why            map[string]string `json:"why,omitempty"`
	Failure        string            `json:"failure,omitempty"`
}
