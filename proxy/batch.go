package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/coalesce"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/upstream"
)

// batchRoute is a batch route's compiled rule and the Batcher for its sink.
// Exactly one of the three batchers is set, by the sink.
type batchRoute struct {
	sink string

	http     *coalesce.Batcher[json.RawMessage, upstream.HTTPResult]
	valkey   *coalesce.Batcher[upstream.ValkeyItem, upstream.ValkeyResult]
	ops      *coalesce.Batcher[*upstream.ValkeyOps, upstream.ValkeyOpsResult] // valkey op batch
	postgres *coalesce.Batcher[upstream.PostgresItem, upstream.PostgresResult]
	pgSink   *upstream.PostgresSink // for its pool stats

	// valkey: the templates of one item. bodyless: none of them, nor
	// an invalidation, reads the body, so a request may come without one
	// (a DELETE, an expire).
	op              string
	key, value, ttl configs.Template
	ttlDefault      int64 // seconds that replace a falsy ttl
	bodyless        bool

	// postgres: one template per column, in the sink's column order, and
	// the answer fields that the returned columns fill.
	columns   []configs.Template
	returning []returnField
	// passWhenDown sends a write to the app's own route when PostgreSQL
	// could not be reached (when_down: pass), instead of a 503.
	passWhenDown bool

	// passThrough is set once the postgres sink's table turns out not to
	// exist in its database: then the route's writes go to the app, as
	// a pass route's would, rather than fail one by one.
	passThrough atomic.Bool
}

// errNoTable marks a flush that failed because the sink's table, schema
// or a column does not exist: the route is misconfigured for this
// database, and no item of it can be written there.
var errNoTable = errors.New("the postgres sink's table is not in its database")

// missingTable reports whether err is PostgreSQL's undefined table,
// undefined column or invalid schema.
func missingTable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P01", "42703", "3F000":
		return true
	}
	return false
}

// returnField is one answer field of a postgres route, filled from a
// returned column.
type returnField struct{ field, column string }

// batcher is what Shutdown and /stats need of a Batcher, whatever its sink.
type batcher interface {
	Stats() coalesce.BatcherStats
	Close(ctx context.Context) error
}

func (b *batchRoute) batcher() batcher {
	switch {
	case b.http != nil:
		return b.http
	case b.valkey != nil:
		return b.valkey
	case b.ops != nil:
		return b.ops
	default:
		return b.postgres
	}
}

// batchConfig is the Batcher's bounds for one route; a flush is bounded by
// the upstream timeout, like every other call Sheepdog makes for a client.
func batchConfig(b *configs.BatchRule, timeout time.Duration) coalesce.BatcherConfig {
	return coalesce.BatcherConfig{
		MaxItems:    b.MaxItems,
		MaxBytes:    int(b.MaxBytes),
		MaxWait:     b.MaxWait,
		Queue:       b.Queue,
		MaxInFlight: b.MaxInFlight,
		Timeout:     timeout,
		Split:       func(err error) bool { return !wholeBatch(err) },
	}
}

// buildBatches builds the sink and Batcher of every batch route. Stores
// are not dialled here: a Valkey or PostgreSQL that is down must not stop
// Sheepdog starting; its routes answer 503 per item until it is back.
// On error, whatever was built is closed.
func (p *Proxy) buildBatches() (err error) {
	defer func() {
		if err != nil {
			p.closeBatchStores()
		}
	}()
	for _, rt := range p.router.routes {
		rule := rt.cfg.Batch
		if rule == nil {
			continue
		}
		b, err := p.buildBatch(rt.name, rule)
		if err != nil {
			return fmt.Errorf("route %s: batch: %w", rt.name, err)
		}
		if p.batches == nil {
			p.batches = make(map[*route]*batchRoute)
		}
		p.batches[rt] = b
	}
	return nil
}

func (p *Proxy) buildBatch(route string, rule *configs.BatchRule) (*batchRoute, error) {
	cfg := batchConfig(rule, p.cfg.Upstream.Timeout)
	cfg.Observe = p.flushObserver(route, rule.Sink)
	b := &batchRoute{sink: rule.Sink}
	var err error
	switch rule.Sink {
	case configs.SinkHTTP:
		sink := upstream.NewHTTPSink(p.upstream, rule.URL, rule.Wrap, rule.Split)
		if p.tracer != nil {
			sink.Prepare = p.injectTrace
		}
		size := func(it json.RawMessage) int { return len(it) }
		b.http, err = coalesce.NewBatcher(cfg, size, sink.Flush)
	case configs.SinkValkey:
		err = p.buildValkey(b, rule, cfg)
	case configs.SinkPostgres:
		err = p.buildPostgres(b, route, rule, cfg)
	default:
		err = fmt.Errorf("unknown sink %q", rule.Sink)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (p *Proxy) buildValkey(b *batchRoute, rule *configs.BatchRule, cfg coalesce.BatcherConfig) error {
	if rule.Op == configs.OpBatch {
		return p.buildValkeyOps(b, rule, cfg)
	}
	var err error
	b.op = rule.Op
	if b.key, err = parseBatchTemplate("key", rule.Key); err != nil {
		return err
	}
	if b.value, err = parseBatchTemplate("value", rule.Value); err != nil {
		return err
	}
	b.ttlDefault = int64(rule.TTLDefault)
	if b.ttl, err = parseBatchTemplate("ttl", rule.TTL); err != nil {
		return err
	}
	b.bodyless = !readsBody(b.key) && !readsBody(b.value) && !readsBody(b.ttl)
	client, err := p.valkeyClient(rule)
	if err != nil {
		return err
	}
	sink := upstream.NewValkeySink(client)
	size := func(it upstream.ValkeyItem) int { return len(it.Key) + len(it.Value) }
	b.valkey, err = coalesce.NewBatcher(cfg, size, sink.Flush)
	return err
}

// readsBody reports whether t takes a value from the request's body.
func readsBody(t configs.Template) bool {
	return slices.ContainsFunc(t, func(p configs.Part) bool { return p.Source == configs.SourceBody })
}

// buildPostgres compiles the column templates in the order of the sorted
// column names (the config's map has none), and the answer fields.
func (p *Proxy) buildPostgres(b *batchRoute, route string, rule *configs.BatchRule, cfg coalesce.BatcherConfig) error {
	pool, err := p.postgresPool()
	if err != nil {
		return err
	}
	b.passWhenDown = rule.WhenDown == configs.WhenDownPass
	cols := slices.Sorted(maps.Keys(rule.Columns))
	for _, col := range cols {
		t, err := parseBatchTemplate("columns."+col, rule.Columns[col])
		if err != nil {
			return err
		}
		b.columns = append(b.columns, t)
	}
	var retCols []string
	for _, field := range slices.Sorted(maps.Keys(rule.Returning)) {
		col := rule.Returning[field]
		b.returning = append(b.returning, returnField{field: field, column: col})
		if !slices.Contains(retCols, col) {
			retCols = append(retCols, col)
		}
	}
	sink, err := upstream.NewPostgresSink(pool, rule.Table, cols, retCols)
	if err != nil {
		return err
	}
	b.pgSink = sink
	b.postgres, err = coalesce.NewBatcher(cfg, postgresItemSize, p.postgresFlush(b, sink, route))
	return err
}

// postgresItemSize weighs a row against max_bytes: the bytes of its
// values, as the statement carries them.
func postgresItemSize(it upstream.PostgresItem) int {
	n := 0
	for _, v := range it.Values {
		switch v := v.(type) {
		case string:
			n += len(v)
		case json.RawMessage:
			n += len(v)
		case []byte:
			n += len(v)
		}
	}
	return n
}

// postgresFlush is sink.Flush, except that once the table is found
// missing the route passes its writes through to the app: the batches
// still queued fail at once with errNoTable (without a round trip each
// time the Batcher splits them), and their callers are passed through.
// Nothing was written by a failed INSERT, so nothing is written twice.
func (p *Proxy) postgresFlush(b *batchRoute, sink *upstream.PostgresSink, route string) coalesce.FlushFunc[upstream.PostgresItem, upstream.PostgresResult] {
	return func(ctx context.Context, items []upstream.PostgresItem) ([]upstream.PostgresResult, error) {
		if b.passThrough.Load() {
			return nil, errNoTable
		}
		res, err := sink.Flush(ctx, items)
		if err != nil && missingTable(err) {
			if b.passThrough.CompareAndSwap(false, true) {
				p.log.Warn("postgres sink: table missing; the route's writes now pass through to the app",
					"route", route, "sink", sink.String(), "error", err)
			}
			return nil, fmt.Errorf("%w: %w", errNoTable, err)
		}
		return res, err
	}
}

// wholeBatch reports whether err fails a batch whatever its items are: a
// store that cannot be reached, a table that is not there, an endpoint
// that failed (5xx, already retried once), turned the batch away for its
// load (429, 408: StatusError.Throttled) or could not be reached. Such a
// batch is not split: against a store that is down, a batch of 100 would
// make 199 calls, each failing the same way. (A batch taken whose answer
// cannot be matched to its items, coalesce.ErrResultCount, never reaches
// Split: the Batcher itself refuses to split it.)
func wholeBatch(err error) bool {
	var se *upstream.StatusError
	var ue *upstream.Error
	switch {
	case errors.Is(err, upstream.ErrUnavailable), errors.Is(err, errNoTable):
		return true
	case errors.As(err, &se):
		// Only a 4xx can name an item; a 3xx or 5xx is the endpoint's.
		return se.Status < 400 || se.Status >= 500 || se.Throttled()
	case errors.As(err, &ue):
		return true
	}
	return false
}

func parseBatchTemplate(what, s string) (configs.Template, error) {
	if s == "" {
		return nil, nil
	}
	t, err := configs.ParseTemplate(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t, nil
}

// valkeyClient opens a client of the sink's own: on the route's addrs, or
// else on the L2 addresses. It is the sink's, not the cache's, so that a
// burst of writes never queues behind cache lookups; Shutdown closes it.
// go-redis dials on first use, so a Valkey that is down fails writes, not
// the start.
func (p *Proxy) valkeyClient(rule *configs.BatchRule) (redis.UniversalClient, error) {
	addrs := rule.Addrs
	if len(addrs) == 0 {
		addrs = p.cfg.Cache.L2.Addrs
	}
	if len(addrs) == 0 {
		return nil, errors.New("a valkey sink needs addrs, or cache.l2.addrs")
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 addrs,
		Password:              p.cfg.Cache.L2.Password,
		ContextTimeoutEnabled: true,
		DialerRetries:         1,
		DisableIdentity:       true,
		// A pipeline is never sent twice: one that ran but whose reply
		// was lost, sent again after a later batch, would set its keys
		// back to older values. Its callers get the error instead.
		MaxRetries: -1,
	})
	p.valkeyClients = append(p.valkeyClients, client)
	return client, nil
}

// postgresPool returns the pool every postgres sink shares, made on first
// use. pgxpool dials only when a flush asks for a connection, so a
// database that is down fails writes with 503, not the start.
func (p *Proxy) postgresPool() (*pgxpool.Pool, error) {
	if p.pgPool != nil {
		return p.pgPool, nil
	}
	if p.cfg.Postgres.DSN == "" {
		return nil, errors.New("a postgres sink needs postgres.dsn")
	}
	pc, err := pgxpool.ParseConfig(p.cfg.Postgres.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres.dsn: %w", err)
	}
	if n := p.cfg.Postgres.MaxConns; n > 0 {
		pc.MaxConns = int32(min(n, 1<<20))
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("postgres.dsn: %w", err)
	}
	p.pgPool = pool
	return pool, nil
}

// closeBatches closes every Batcher, flushing what is queued, and then the
// stores' connections. Shutdown calls it once the server takes no more
// requests, so nothing acknowledged is lost.
func (p *Proxy) closeBatches(ctx context.Context) error {
	var errs []error
	for _, rt := range p.router.routes {
		if b := p.batches[rt]; b != nil {
			if err := b.batcher().Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("route %s: %w", rt.name, err))
			}
		}
	}
	p.closeBatchStores()
	return errors.Join(errs...)
}

func (p *Proxy) closeBatchStores() {
	for _, c := range p.valkeyClients {
		c.Close() //nolint:errcheck // closing; nothing to do about it
	}
	p.valkeyClients = nil
	if p.pgPool != nil {
		p.pgPool.Close()
		p.pgPool = nil
	}
}
