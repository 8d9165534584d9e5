// Package configs owns Sheepdog's YAML contract: the schema, its defaults,
// strict parsing with file:line errors, environment expansion, validation,
// and the compiled path and value templates the other packages use.
//
// It imports nothing of Sheepdog's, so every other package may import it.
package configs

import "time"

// Config is one Sheepdog configuration file, loaded by Load.
// Every field documents its default; Load applies them.
type Config struct {
	// Listen is the client-facing address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Admin is the operator's listener.
	Admin Admin `yaml:"admin"`
	// Upstream is the Style Shepherd app behind Sheepdog.
	Upstream Upstream `yaml:"upstream"`
	// Server holds the client-facing limits and timeouts.
	Server Server `yaml:"server"`
	// Cache configures the L1 and L2 tiers used by cache routes.
	Cache Cache `yaml:"cache"`
	// Postgres is used only by postgres batch sinks.
	Postgres Postgres `yaml:"postgres"`
	// Telemetry configures traces.
	Telemetry Telemetry `yaml:"telemetry"`
	// Routes are matched in order; the first match wins.
	Routes []Route `yaml:"routes"`

	// Source is the file the config was loaded from, for messages.
	Source string `yaml:"-"`
}

// Admin is the admin listener: the status page, health, stats, metrics, and (with Token) purge.
type Admin struct {
	// Listen is the admin address. Default 127.0.0.1:9901.
	Listen string `yaml:"listen"`
	// Token guards the state-changing admin endpoints. Default empty:
	// those endpoints are refused.
	Token string `yaml:"token"`
}

// Upstream is the origin application.
type Upstream struct {
	// URL is the app's base URL, http only. Required.
	URL string `yaml:"url"`
	// Timeout bounds one whole upstream exchange, a streamed body
	// included, and each coalesce waiter. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConns caps open connections to the upstream. Default 512.
	MaxConns int `yaml:"max_conns"`
	// IdleTimeout closes an idle upstream connection. It must stay below
	// the app's own keep-alive timeout (Node's is 5s), or a request may be
	// sent on a connection the app has just closed. Default 4s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// HealthPath is requested by the admin health probe, at most once a
	// second. Default "/".
	HealthPath string `yaml:"health_path"`
}

// Server holds the client-facing limits and timeouts.
type Server struct {
	// MaxBodySize bounds a request body; larger ones get 413.
	// Default 10MiB (the app's own limit).
	MaxBodySize ByteSize `yaml:"max_body_size"`
	// MaxHeaderSize bounds the request line and headers; larger ones get
	// 431. Default 16KiB (Node's limit).
	MaxHeaderSize ByteSize `yaml:"max_header_size"`
	// ReadTimeout bounds reading one whole request. Default 60s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one whole response. Default 60s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long. Default 90s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConns caps concurrent client connections. Default 10000.
	MaxConns int `yaml:"max_conns"`
	// ShutdownGrace is how long in-flight requests may take to finish
	// after SIGTERM or SIGINT. Default 10s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// Cache configures the two cache tiers.
type Cache struct {
	L1 L1 `yaml:"l1"`
	L2 L2 `yaml:"l2"`
}

// L1 is the in-process tier.
type L1 struct {
	// MaxBytes bounds L1 by bytes (body, headers and overhead). Default 256MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// L2 is the shared Valkey tier.
type L2 struct {
	// Addrs lists Valkey addresses. Default none: L1 only. Several: a cluster.
	Addrs []string `yaml:"addrs"`
	// Password for Valkey AUTH. Default empty.
	Password string `yaml:"password"`
	// KeyPrefix starts every cache key Sheepdog writes. Default "sheepdog:".
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds one L2 call. Default 50ms.
	Timeout time.Duration `yaml:"timeout"`
}

// Postgres is the database the postgres sinks write to.
type Postgres struct {
	// DSN is a pgx connection string. Default empty; required when a route
	// uses a postgres sink.
	DSN string `yaml:"dsn"`
	// MaxConns caps the pool's connections. Default 0: pgx's own (the
	// larger of 4 and the number of CPUs).
	MaxConns int `yaml:"max_conns"`
}

// Telemetry configures tracing.
type Telemetry struct {
	// ServiceName names this service in traces. Default "sheepdog".
	ServiceName string `yaml:"service_name"`
	// Traces is the exporter: otlp, stdout or none. Default none.
	Traces string `yaml:"traces"`
}

// Route is one entry of the route table: a match and exactly one action
// (cache, batch or pass).
type Route struct {
	// Name identifies the route in stats, metrics and cache keys. Required, unique.
	Name string `yaml:"name"`
	// Match selects the requests this route takes.
	Match Match `yaml:"match"`
	// Cache makes this a cache route.
	Cache *CacheRule `yaml:"cache"`
	// Batch makes this a batch route.
	Batch *BatchRule `yaml:"batch"`
	// Pass makes this a pass-through route.
	Pass *PassRule `yaml:"pass"`
	// Invalidates lists tag templates dropped after a successful write.
	Invalidates []string `yaml:"invalidates"`

	// Line is where the route starts in Source, for messages.
	Line int `yaml:"-"`
}

// Action is the kind of handler a route uses.
type Action string

// The three route actions.
const (
	ActionCache Action = "cache"
	ActionBatch Action = "batch"
	ActionPass  Action = "pass"
)

// Action reports which of cache, batch or pass the route sets.
// Load guarantees exactly one is set.
func (r *Route) Action() Action {
	switch {
	case r.Cache != nil:
		return ActionCache
	case r.Batch != nil:
		return ActionBatch
	default:
		return ActionPass
	}
}

// Match selects requests. Path and PathPrefix are exclusive; one is required.
type Match struct {
	// Method is one HTTP method; empty matches any. A GET route also
	// takes HEAD, as in nginx and Varnish.
	Method string `yaml:"method"`
	// Path is a path template: literal segments and whole-segment
	// parameters such as "/users/{userId}/profile".
	Path string `yaml:"path"`
	// PathPrefix matches every path that starts with it.
	PathPrefix string `yaml:"path_prefix"`
}

// CacheRule makes a route a cache route.
type CacheRule struct {
	// TTL is how long an answer stays fresh. Required, above zero.
	TTL time.Duration `yaml:"ttl"`
	// StaleWhileRevalidate is how long past TTL a stale copy is answered
	// while one background refresh runs. Default 0.
	StaleWhileRevalidate time.Duration `yaml:"stale_while_revalidate"`
	// StaleIfError is how long past TTL a stale copy is answered when the
	// upstream fails. Default 0.
	StaleIfError time.Duration `yaml:"stale_if_error"`
	// Key lists the request values that make up the cache key.
	Key KeyRule `yaml:"key"`
	// Tags are tag templates attached to every stored entry.
	Tags []string `yaml:"tags"`
	// Statuses that may be stored. Default 200, 203, 204, 300, 301, 404, 410.
	// 5xx, 400, 413 and 431 are never allowed.
	Statuses []int `yaml:"statuses"`
}

// KeyRule is the allowlist of request values in a cache key. Each entry is
// a name with an optional default after "=": "topK=20". Everything not
// listed is ignored by the key.
type KeyRule struct {
	Query  []string `yaml:"query"`
	Header []string `yaml:"header"`
	// Body names JSON paths in a JSON request body.
	Body []string `yaml:"body"`
	// Cookie names the cookies that may be part of a cached request.
	Cookie []string `yaml:"cookie"`
}

// BatchRule makes a route a batch route: its requests are gathered into
// batches for one sink.
type BatchRule struct {
	// Sink is http, valkey or postgres. Required.
	Sink string `yaml:"sink"`
	// MaxItems flushes a batch at this many items. Default 100.
	MaxItems int `yaml:"max_items"`
	// MaxBytes flushes a batch at this many body bytes. Default 1MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxWait flushes a batch this long after its first item. Default 2ms.
	MaxWait time.Duration `yaml:"max_wait"`
	// Queue bounds the items waiting on this route; beyond it callers get
	// 503. Default 10000.
	Queue int `yaml:"queue"`
	// MaxInFlight bounds the flushes running at once. Default 4.
	MaxInFlight int `yaml:"max_in_flight"`

	// URL is the batch endpoint's path on the upstream (sink http). Required there.
	URL string `yaml:"url"`
	// Wrap is the JSON field the items are sent under (sink http). Default "items".
	Wrap string `yaml:"wrap"`
	// Split is the JSON field of the answer holding one result per item
	// (sink http). Default "results".
	Split string `yaml:"split"`

	// Op is set, del, expire or batch (sink valkey). Default set. batch
	// runs the request body's operations array, the app's POST
	// /valkey/batch, in one pipeline and takes no key, value or ttl.
	Op string `yaml:"op"`
	// Key is the Valkey key template (sink valkey). Required there.
	Key string `yaml:"key"`
	// Value is the value template (sink valkey, op set). Required for set.
	Value string `yaml:"value"`
	// TTL is a template giving seconds; 0 means no expiry (sink valkey).
	TTL string `yaml:"ttl"`
	// TTLDefault, in seconds, replaces a ttl that JavaScript finds falsy
	// (missing, 0, null, false, ""): the app's `ttl || 86400` for
	// sessions. Default 0: a falsy ttl means no expiry (sink valkey).
	TTLDefault int `yaml:"ttl_default"`
	// Addrs overrides the L2 addresses for this sink (sink valkey).
	Addrs []string `yaml:"addrs"`

	// Table is the table inserted into (sink postgres). Required there.
	Table string `yaml:"table"`
	// Columns maps column names to value templates (sink postgres).
	Columns map[string]string `yaml:"columns"`
	// Returning maps answer fields to returned columns (sink postgres).
	Returning map[string]string `yaml:"returning"`
	// WhenDown says what a write does while PostgreSQL cannot be reached
	// (sink postgres): fail, a 503 (the default), or pass, to the app's
	// own route, which writes it itself.
	WhenDown string `yaml:"when_down"`
}

// The values of a postgres sink's when_down.
const (
	WhenDownFail = "fail"
	WhenDownPass = "pass"
)

// The sinks a batch route can flush into.
const (
	SinkHTTP     = "http"
	SinkValkey   = "valkey"
	SinkPostgres = "postgres"
)

// The Valkey operations of a valkey sink.
const (
	OpSet    = "set"
	OpDel    = "del"
	OpExpire = "expire"
	OpBatch  = "batch"
)

// PassRule makes a route pass requests through to the upstream, streamed.
type PassRule struct{}
