// Package policy evaluates Supabase Realtime Authorization: the RLS
// policies on realtime.messages that decide who may read from and write to
// a private channel (docs/protocol.md §9.2). Probes run in a transaction
// that is always rolled back, as the joining role with its claims, the
// topic and the request's x-* headers set transaction-locally, so nothing
// persists and no setting leaks into pooled connections.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Request is who asks about which channel.
type Request struct {
	// Role is the JWT role claim, the database role the probe acts as.
	Role string
	// Sub is the JWT sub claim ("" when absent).
	Sub string
	// Claims is the JSON object of all verified claims.
	Claims json.RawMessage
	// Topic is the bare channel name (realtime.topic()).
	Topic string
	// Headers are the request headers the policy may see
	// (current_setting('request.headers')): lower-case names.
	Headers map[string]string
	// Presence also probes the presence extension.
	Presence bool
}

// Failure classes of a probe; every error a Prober returns wraps one.
var (
	// ErrPolicy is any database error raised while evaluating the policies
	// (a policy raising, a role that does not exist): the caller is
	// unauthorized.
	ErrPolicy = errors.New("policy check failed")
	// ErrMissingPartition means realtime.messages has no partition for today.
	ErrMissingPartition = errors.New("missing messages partition")
	// ErrUnavailable means the database could not be reached.
	ErrUnavailable = errors.New("database unavailable")
)

// Prober runs read and write probes on a pool whose user bypasses RLS on
// realtime.messages (its owner or a superuser) and may SET ROLE to every
// role a token can claim.
type Prober struct {
	pool *pgxpool.Pool
	// reads batches concurrent read probes; nil runs each on its own.
	reads *readBatcher
	// image, when set, judges batched read probes on probe row images
	// rather than inserted rows (docs/protocol.md §9.2).
	image *imageCache
}

// NewProber returns a Prober using pool that runs each probe in its own
// transaction, one statement per round trip (safe on any connection,
// PGlite's shared session included).
func NewProber(pool *pgxpool.Pool) *Prober { return &Prober{pool: pool} }

// NewBatchingProber returns a Prober using pool that evaluates concurrent
// read probes in batches, each batch one pipelined round trip on one
// connection, at most workers batches at once, judging the policies on
// images of the probe rows where they allow it (docs/protocol.md §9.2).
// The pool must reach PostgreSQL directly (the extended protocol's
// pipeline).
func NewBatchingProber(pool *pgxpool.Pool, workers int) *Prober {
	if workers < 1 {
		workers = 1
	}
	p := &Prober{pool: pool, image: &imageCache{}}
	p.reads = newReadBatcher(p, workers)
	return p
}

// Read reports whether the request may read broadcasts and (when asked)
// presence on the topic (docs/protocol.md §9.2): probe rows are inserted as
// the pool user, then selected back as the request's role.
func (p *Prober) Read(ctx context.Context, r *Request) (broadcast, presence bool, err error) {
	if p.reads != nil {
		return p.reads.read(ctx, r)
	}
	return p.readOne(ctx, r)
}

// readOne is Read in a transaction of its own.
func (p *Prober) readOne(ctx context.Context, r *Request) (broadcast, presence bool, err error) {
	readPaths.insert.Add(1)
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return false, false, fmt.Errorf("%w: begin read probe: %v", ErrUnavailable, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	bid, pid := uuid.NewString(), uuid.NewString()
	ins := `INSERT INTO realtime.messages (topic, extension, updated_at, inserted_at, id) VALUES
($1, 'broadcast', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', $2::uuid)`
	args := []any{r.Topic, bid}
	if r.Presence {
		ins += `, ($1, 'presence', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', $3::uuid)`
		args = append(args, pid)
	}
	if _, err := tx.Exec(ctx, ins, args...); err != nil {
		return false, false, classify("insert read probe", err)
	}
	if err := setContext(ctx, tx, r); err != nil {
		return false, false, err
	}
	rows, err := tx.Query(ctx, "SELECT id::text FROM realtime.messages WHERE id = ANY($1::uuid[])", []string{bid, pid})
	if err != nil {
		return false, false, classify("select read probe", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, false, classify("select read probe", err)
	}
	for _, id := range ids {
		switch id {
		case bid:
			broadcast = true
		case pid:
			presence = true
		}
	}
	return broadcast, presence, nil
}

// Write reports whether the request may write broadcasts and presence on
// the topic (docs/protocol.md §9.2): one INSERT per extension as the
// request's role, each in a savepoint; insufficient_privilege means no.
func (p *Prober) Write(ctx context.Context, r *Request) (broadcast, presence bool, err error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return false, false, fmt.Errorf("%w: begin write probe: %v", ErrUnavailable, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := setContext(ctx, tx, r); err != nil {
		return false, false, err
	}
	var out [2]bool
	for i, ext := range []string{"broadcast", "presence"} {
		if _, err := tx.Exec(ctx, "SAVEPOINT probe"); err != nil {
			return false, false, classify("savepoint", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO realtime.messages (topic, extension, updated_at, inserted_at)
VALUES ($1, $2, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')`, r.Topic, ext)
		if err == nil {
			out[i] = true
			if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT probe"); err != nil {
				return false, false, classify("release savepoint", err)
			}
			continue
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			return false, false, classify("insert write probe", err)
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT probe"); err != nil {
			return false, false, classify("rollback to savepoint", err)
		}
	}
	return out[0], out[1], nil
}

// setContext switches the transaction to the request's role and settings.
func setContext(ctx context.Context, tx pgx.Tx, r *Request) error {
	claims, headers, sub := contextValues(r)
	var s any
	if sub != "" {
		s = sub
	}
	if _, err := tx.Exec(ctx, contextSQL, r.Role, r.Topic, claims, s, headers); err != nil {
		return classify("set probe context", err)
	}
	return nil
}

// contextValues are the claims and headers JSON texts and the sub ("" when
// absent) a probe sets for r.
func contextValues(r *Request) (claims, headers, sub string) {
	claims = string(r.Claims)
	if claims == "" {
		claims = "{}"
	}
	h, err := json.Marshal(r.Headers)
	if err != nil || r.Headers == nil {
		h = []byte("{}")
	}
	return claims, string(h), r.Sub
}

// classify wraps a database error in its failure class.
func classify(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code == "23514" {
			return fmt.Errorf("%w: %s: %v", ErrMissingPartition, what, err)
		}
		return fmt.Errorf("%w: %s: %v", ErrPolicy, what, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}

// Message is a stored broadcast of realtime.messages, for replay.
type Message struct {
	// ID is the row's uuid.
	ID string
	// Event is the broadcast event.
	Event string
	// Payload is JSON text, or raw bytes when Binary.
	Payload []byte
	// Binary marks a binary_payload row.
	Binary bool
}

// Replay returns up to limit of the newest private broadcasts stored for
// topic since the given time, oldest first (docs/protocol.md §9.4). It
// reads as the pool user: the caller has checked broadcast read.
func (p *Prober) Replay(ctx context.Context, topic string, since time.Time, limit int) ([]Message, error) {
	rows, err := p.pool.Query(ctx, `SELECT id::text, coalesce(event, ''), payload::text, binary_payload
FROM realtime.messages
WHERE topic = $1 AND private IS TRUE AND extension = 'broadcast'
  AND inserted_at >= $2::timestamp AND inserted_at < (now() AT TIME ZONE 'UTC') + interval '1 minute'
  AND (expires_at IS NULL OR expires_at > now() AT TIME ZONE 'UTC')
ORDER BY inserted_at DESC LIMIT $3`, topic, since.UTC().Format("2006-01-02 15:04:05.999999"), limit)
	if err != nil {
		return nil, classify("replay", err)
	}
	var out []Message
	for rows.Next() {
		var m Message
		var payload *string
		var bin []byte
		if err := rows.Scan(&m.ID, &m.Event, &payload, &bin); err != nil {
			rows.Close()
			return nil, classify("replay", err)
		}
		switch {
		case bin != nil:
			m.Payload, m.Binary = bin, true
		case payload != nil:
			m.Payload = []byte(*payload)
		default:
			continue
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("replay", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Store keeps a client broadcast sent with persist on a private topic
// (docs/protocol.md §9.5), for replay; ttl > 0 limits how long. It writes
// as the pool user: the caller has checked broadcast write.
func (p *Prober) Store(ctx context.Context, topic, event string, payload []byte, binary bool, ttl time.Duration) (string, error) {
	id := uuid.NewString()
	var js, bin any
	if binary {
		bin = payload
	} else {
		js = string(payload)
	}
	var exp any
	if ttl > 0 {
		exp = time.Now().UTC().Add(ttl).Format("2006-01-02 15:04:05.999999")
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO realtime.messages (id, topic, extension, event, private, payload, binary_payload, expires_at, origin, inserted_at, updated_at)
VALUES ($1::uuid, $2, 'broadcast', $3, true, $4::jsonb, $5::bytea, $6::timestamp, 'client', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')`,
		id, topic, event, js, bin, exp)
	if err != nil {
		return "", classify("store broadcast", err)
	}
	return id, nil
}
