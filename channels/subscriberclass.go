package channels

import "sync/atomic"

// subscriberClass is a set of subscriptions that share one identity
// (claims) and the same active postgres_changes bindings. Everything about
// a change except the final envelope is the same for all of them, so the
// fan-out matches filters, checks RLS and encodes once per class, then only
// copies frames to the members. With many subscribers per user this turns
// the per-change work from O(subscribers) into O(classes + deliveries).
// Classes are created, joined and left only through pgIndex (add, remove).
type subscriberClass struct {
	key    string
	id     *Identity
	active []*activeBinding // of the first member; identical for all by key

	members atomic.Pointer[[]*Subscription] // copy-on-write; written under pgIndex.mu
	drops   [numDropReasons]atomic.Int64    // per-member drops counted once for the class
}

// drop records that one message was not sent to any member for reason r.
func (c *subscriberClass) drop(r DropReason) {
	c.drops[r].Add(1)
	dropTotals[r].Add(int64(len(*c.members.Load())))
}
