package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Hard bounds: every loop of the tool is limited in count and time.
const (
	maxSubscribers     = 100_000
	maxChannelsPerConn = 1_000
	maxDuration        = 10 * time.Minute
	maxDrain           = time.Minute
	maxRate            = 2_000_000
	maxMessages        = 50_000_000 // ledger capacity, ~6 MB of bits
	maxSenders         = 256
	maxPayloadBytes    = 64 << 10
	maxTimelineSeconds = int(maxDuration/time.Second) + int(maxDrain/time.Second) + 5
)

// Load kinds.
const (
	loadIdle          = "idle"
	loadJoin          = "join"
	loadBroadcastWS   = "broadcast-ws"
	loadBroadcastREST = "broadcast-rest"
	loadDBInsert      = "db-insert"
	loadDBUpdate      = "db-update"
	loadSoak          = "soak"
	loadDBBroadcast   = "db-broadcast"
)

// WebSocket readers (--reader).
const (
	readerURing = "uring"
	readerEpoll = "epoll"
	readerGo    = "go"
)

// config is the validated command line.
type config struct {
	Label       string
	URLs        []*url.URL // the nodes; one for a single service
	APIKey      string
	JWTSecret   string
	TokenTTL    time.Duration
	Transport   string // ws or sse
	Subscribers int
	Users       int
	Channels    int
	Prefix      string
	ChansPerCon int
	Join        bool
	Load        string
	Rate        float64
	Duration    time.Duration
	Drain       time.Duration
	Settle      time.Duration
	PayloadSize int
	Senders     int
	RESTBatch   int
	DBURL       string
	DBBatch     int
	Table       string
	SyncCommit  bool
	Private     bool
	RLS         bool
	Policy      string // owner (compiles) or membership (needs PostgreSQL)
	Filter      string // none or user
	Event       string
	PID         int
	ConnectConc int
	JoinPace    float64
	JoinTimeout time.Duration
	Heartbeat   time.Duration
	JSONPath    string
	CPUProfile  string
	Reader      string // readerURing, readerEpoll or readerGo
	Quiet       bool
	Soak        soakConfig
}

func parseConfig(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("realtime-bench", flag.ContinueOnError)
	rawURL := fs.String("url", "", "base URL of the service under test, e.g. http://127.0.0.1:4000 (the only address the tool talks to), or a comma-separated list of a cluster's node URLs: subscriber i and sender j connect to node i % n and j % n (soak attacks go to the first)")
	fs.StringVar(&c.Label, "label", "", "name of this run in the report")
	fs.StringVar(&c.APIKey, "apikey", "", "connection apikey (default: an anon key minted with --jwt-secret)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret used to mint one token per user (required)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", time.Hour, "lifetime of the minted tokens")
	fs.StringVar(&c.Transport, "transport", "ws", "subscriber transport: ws (Phoenix vsn 2.0.0) or sse")
	fs.IntVar(&c.Subscribers, "subscribers", 100, "number of subscriber connections")
	fs.IntVar(&c.Users, "users", 0, "distinct users (tokens); subscriber i is user i % users (default: one per subscriber)")
	fs.IntVar(&c.Channels, "channels", 1, "distinct broadcast channel names; subscriber i joins channel i % channels")
	fs.StringVar(&c.Prefix, "channel-prefix", "bench", "channel name prefix")
	fs.BoolVar(&c.Join, "join", true, "join the channels (false: bare sockets, idle load only)")
	fs.IntVar(&c.ChansPerCon, "channels-per-conn", 1, "join load: channels each connection joins")
	fs.StringVar(&c.Load, "load", loadIdle, "idle | join | broadcast-ws | broadcast-rest | db-insert | db-update | db-broadcast (realtime.send) | soak")
	fs.Float64Var(&c.Rate, "rate", 100, "messages (broadcasts or rows) per second, all senders together")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long load is generated (idle: how long connections are held)")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "longest wait for outstanding deliveries after the load stops")
	fs.DurationVar(&c.Settle, "settle", 3*time.Second, "wait after connecting before the memory sample")
	fs.IntVar(&c.PayloadSize, "payload-bytes", 64, "broadcast payload size (database rows get the same padding)")
	fs.IntVar(&c.Senders, "senders", 4, "sender connections / REST workers / database connections")
	fs.IntVar(&c.RESTBatch, "rest-batch", 1, "messages per REST broadcast request")
	fs.StringVar(&c.DBURL, "db-url", "", "PostgreSQL URL for db-insert/db-update (the service's database)")
	fs.IntVar(&c.DBBatch, "db-batch", 1, "rows per INSERT statement (one transaction)")
	fs.StringVar(&c.Table, "table", "", "bench table in schema public (default realtime_bench_rls or realtime_bench_open)")
	fs.BoolVar(&c.Private, "private", false, "join private channels; with --db-url a membership policy on realtime.messages admits every user to every bench channel")
	fs.BoolVar(&c.SyncCommit, "sync-commit", true, "writer sessions SET synchronous_commit = on (as production PostgreSQL)")
	fs.BoolVar(&c.RLS, "rls", true, "bench table has an owner-only RLS policy (user_id = auth.uid())")
	fs.StringVar(&c.Policy, "policy", "owner", "RLS policy with --rls: owner (user_id = auth.uid(), evaluated in Go) or membership (an EXISTS sub-query on a members table, evaluated by PostgreSQL)")
	fs.StringVar(&c.Filter, "filter", "none", "postgres_changes binding filter: none or user (user_id=eq.<own id>)")
	fs.StringVar(&c.Event, "event", "", "postgres_changes binding event (default INSERT or UPDATE after --load)")
	fs.IntVar(&c.PID, "pid", 0, "pid of the service, for RSS and CPU from /proc/<pid>")
	fs.IntVar(&c.ConnectConc, "connect-concurrency", 200, "connections opened in parallel")
	fs.Float64Var(&c.JoinPace, "join-pace", 50, "joins per second per connection at most (service default limit: 100)")
	fs.DurationVar(&c.JoinTimeout, "join-timeout", 10*time.Second, "join (and postgres_changes subscription) timeout")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 25*time.Second, "Phoenix heartbeat interval, as realtime-js")
	c.Soak.register(fs)
	fs.StringVar(&c.JSONPath, "json", "", "also write the result as JSON to this file (- for stdout)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the tool's own CPU profile to this file (to tell the tool's cost from the service's)")
	fs.StringVar(&c.Reader, "reader", defaultReader, "how the tool reads its WebSocket subscribers: uring (a few goroutines; the sockets one epoll_wait finds readable are read in one io_uring submission; Linux, falling back to epoll when the kernel refuses io_uring), epoll (the same with one read(2) per readable socket; Linux) or go (a goroutine per socket, gorilla's reader)")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	urls, err := parseNodeURLs(*rawURL)
	if err != nil {
		return nil, err
	}
	c.URLs = urls
	if c.Users == 0 {
		c.Users = c.Subscribers
	}
	if c.Event == "" {
		c.Event = "INSERT"
		if c.Load == loadDBUpdate {
			c.Event = "UPDATE"
		}
	}
	if c.Table == "" {
		c.Table = "realtime_bench_open"
		if c.RLS {
			c.Table = "realtime_bench_rls"
			if c.Policy == "membership" {
				c.Table = "realtime_bench_member"
			}
		}
	}
	if c.Policy != "owner" && c.Policy != "membership" {
		return nil, fmt.Errorf("--policy must be owner or membership, not %q", c.Policy)
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch {
	case c.JWTSecret == "":
		return errors.New("--jwt-secret is required (tokens are minted per user)")
	case c.Transport != "ws" && c.Transport != "sse":
		return fmt.Errorf("--transport must be ws or sse, not %q", c.Transport)
	case c.Reader != readerURing && c.Reader != readerEpoll && c.Reader != readerGo:
		return fmt.Errorf("--reader must be uring, epoll or go, not %q", c.Reader)
	case c.Subscribers < 0 || c.Subscribers > maxSubscribers:
		return fmt.Errorf("--subscribers must be 0..%d", maxSubscribers)
	case c.Users < 1 || c.Users > maxSubscribers:
		return fmt.Errorf("--users must be 1..%d", maxSubscribers)
	case c.Channels < 1 || c.Channels > maxSubscribers:
		return fmt.Errorf("--channels must be 1..%d", maxSubscribers)
	case c.ChansPerCon < 1 || c.ChansPerCon > maxChannelsPerConn:
		return fmt.Errorf("--channels-per-conn must be 1..%d", maxChannelsPerConn)
	case c.Duration <= 0 || c.Duration > maxDuration:
		return fmt.Errorf("--duration must be in (0, %s]", maxDuration)
	case c.Drain < 0 || c.Drain > maxDrain:
		return fmt.Errorf("--drain must be in [0, %s]", maxDrain)
	case c.Settle < 0 || c.Settle > time.Minute:
		return errors.New("--settle must be in [0, 1m]")
	case c.Rate <= 0 || c.Rate > maxRate:
		return fmt.Errorf("--rate must be in (0, %d]", maxRate)
	case c.Rate*c.Duration.Seconds() > maxMessages:
		return fmt.Errorf("--rate × --duration exceeds %d messages", maxMessages)
	case c.PayloadSize < 0 || c.PayloadSize > maxPayloadBytes:
		return fmt.Errorf("--payload-bytes must be 0..%d", maxPayloadBytes)
	case c.Senders < 1 || c.Senders > maxSenders:
		return fmt.Errorf("--senders must be 1..%d", maxSenders)
	case c.RESTBatch < 1 || c.RESTBatch > 1000:
		return errors.New("--rest-batch must be 1..1000")
	case c.DBBatch < 1 || c.DBBatch > 1000:
		return errors.New("--db-batch must be 1..1000")
	case c.Filter != "none" && c.Filter != "user":
		return fmt.Errorf("--filter must be none or user, not %q", c.Filter)
	case c.ConnectConc < 1 || c.ConnectConc > 10_000:
		return errors.New("--connect-concurrency must be 1..10000")
	case c.JoinPace <= 0 || c.JoinPace > 100_000:
		return errors.New("--join-pace must be in (0, 100000]")
	case c.JoinTimeout <= 0 || c.JoinTimeout > time.Minute:
		return errors.New("--join-timeout must be in (0, 1m]")
	case c.Heartbeat < time.Second || c.Heartbeat > 5*time.Minute:
		return errors.New("--heartbeat must be in [1s, 5m]")
	case c.TokenTTL < time.Minute || c.TokenTTL > 7*24*time.Hour:
		return errors.New("--token-ttl must be in [1m, 168h]")
	case !validIdent(c.Table):
		return fmt.Errorf("--table %q must be a plain lower-case identifier", c.Table)
	}
	switch c.Event {
	case "INSERT", "UPDATE", "*":
	default:
		return fmt.Errorf("--event must be INSERT, UPDATE or *, not %q", c.Event)
	}
	switch c.Load {
	case loadIdle, loadJoin, loadBroadcastWS, loadBroadcastREST:
	case loadDBBroadcast:
		if c.DBURL == "" {
			return fmt.Errorf("--load %s needs --db-url", c.Load)
		}
	case loadDBInsert, loadDBUpdate:
		if c.DBURL == "" {
			return fmt.Errorf("--load %s needs --db-url", c.Load)
		}
	case loadSoak:
		return c.validateSoak()
	default:
		return fmt.Errorf("unknown --load %q", c.Load)
	}
	if c.Transport == "sse" && c.Load == loadJoin {
		return errors.New("--load join measures Phoenix joins; use --transport ws")
	}
	if c.Load == loadBroadcastWS && c.Senders > c.Channels {
		c.Senders = c.Channels // a sender needs at least one channel of its own
	}
	if !c.Join && (c.Load != loadIdle || c.Transport != "ws") {
		return errors.New("--join=false is for --load idle over ws")
	}
	if c.Load != loadJoin && c.ChansPerCon != 1 {
		return errors.New("--channels-per-conn is for --load join")
	}
	return nil
}

// dbLoad reports whether the run writes to the database.
func (c *config) dbLoad() bool { return c.Load == loadDBInsert || c.Load == loadDBUpdate }

// usesDB reports whether the run needs a database connection.
func (c *config) usesDB() bool {
	return c.dbLoad() || c.Load == loadDBBroadcast || (c.Private && c.DBURL != "")
}

// keys is the number of addressing keys: users for database writes,
// channels for broadcasts.
func (c *config) keys() int {
	if c.dbLoad() {
		return c.Users
	}
	return c.Channels
}

// subscriberKey is the key subscriber i listens to, or -1 when every
// subscriber receives every message (open table, no filter).
func (c *config) subscriberKey(i int) int {
	if c.dbLoad() {
		if !c.RLS && c.Filter == "none" {
			return -1
		}
		return i % c.Users
	}
	return i % c.Channels
}

// channelName is the channel subscriber (or join slot) i uses.
func (c *config) channelName(i int) string {
	if c.dbLoad() {
		return c.Prefix + "-db-" + strconv.Itoa(i%c.Users)
	}
	return c.Prefix + "-" + strconv.Itoa(i%c.Channels)
}

// totalMessages is the bounded number of messages of the run.
func (c *config) totalMessages() int64 {
	n := int64(c.Rate*c.Duration.Seconds() + 0.5)
	return max(n, 1)
}

func validIdent(s string) bool {
	if s == "" || len(s) > 60 {
		return false
	}
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

// runSlack is the time allowed for connecting, joining and closing on top
// of the configured durations: generous, but finite.
func runSlack(c *config) time.Duration {
	joins := float64(c.Subscribers * c.ChansPerCon)
	perConn := time.Duration(float64(c.ChansPerCon) / c.JoinPace * float64(time.Second))
	return 2*time.Minute + time.Duration(joins/200*float64(time.Millisecond)) + perConn + c.JoinTimeout
}
