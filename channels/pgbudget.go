package channels

import (
	"context"
	"log/slog"
	"time"
)

// The fan-out budget (docs/protocol.md §4.7). Within one batch, each
// subscriber class (the subscriptions sharing identity and bindings) may
// spend at most PGConfig.ClassBudget evaluating its filters, the one part
// of the fan-out whose cost a subscriber chooses (pattern length, number of
// bindings). A class that passes it gets none of the batch's remaining
// changes: each is dropped with reason fanout_budget, and the class is
// logged (at most once per class and minute). Every other class proceeds;
// the batch is delayed by at most one budget per over-budget class.

// DefaultClassBudget is the default PGConfig.ClassBudget.
const DefaultClassBudget = 250 * time.Millisecond

// classSpend is what one class spent on filters in the current batch.
type classSpend struct {
	spent time.Duration
	over  bool
}

// overBudget reports whether c has used up its budget in this batch (live
// fan-out only: a replay serves one subscriber off the hot path).
func (b *pgBatch) overBudget(c *subscriberClass) bool {
	if b.only != nil || b.p.cfg.ClassBudget < 0 {
		return false
	}
	s := b.spend[c]
	return s != nil && s.over
}

// charge adds d to c's spending; the first time it passes the budget the
// class is logged.
func (b *pgBatch) charge(c *subscriberClass, d time.Duration) {
	if b.only != nil || b.p.cfg.ClassBudget < 0 {
		return
	}
	s := b.spend[c]
	if s == nil {
		s = &classSpend{}
		b.spend[c] = s
	}
	s.spent += d
	if !s.over && s.spent > b.p.cfg.ClassBudget {
		s.over = true
		b.stats.OverBudget++
		b.p.logOverBudget(c, s.spent)
	}
}

// logOverBudget logs c once per class key and minute.
func (p *PGChanges) logOverBudget(c *subscriberClass, spent time.Duration) {
	now := p.now()
	p.budgetMu.Lock()
	last, seen := p.budgetLogged[c.key]
	if !seen || now.Sub(last) >= time.Minute {
		if len(p.budgetLogged) >= maxDeniedLogged {
			clear(p.budgetLogged)
		}
		p.budgetLogged[c.key] = now
	}
	p.budgetMu.Unlock()
	if seen && now.Sub(last) < time.Minute {
		return
	}
	members := len(*c.members.Load())
	p.log.LogAttrs(context.Background(), slog.LevelWarn, "postgres_changes: subscriber class over its fan-out budget; the rest of the batch is dropped for it",
		slog.String("role", c.id.Role), slog.Int("subscribers", members), slog.Int("bindings", len(c.active)),
		slog.Duration("spent", spent), slog.Duration("budget", p.cfg.ClassBudget))
}
