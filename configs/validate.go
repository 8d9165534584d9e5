package configs

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// validator checks a decoded Config. It places each problem at the line of
// the key the operator has to change, using the lines the decoder saw.
type validator struct{ *decoder }

func validate(c *Config, d *decoder) {
	v := validator{d}
	v.addr("listen", c.Listen)
	v.addr("admin.listen", c.Admin.Listen)
	if c.Listen == c.Admin.Listen && c.Listen != "" {
		v.problem("admin.listen", "%s is listen's address too: the admin listener needs its own", c.Admin.Listen)
	}
	v.upstream(&c.Upstream)
	v.server(&c.Server)
	v.addrs("cache.l2.addrs", c.Cache.L2.Addrs)
	positive(v, "cache.l1.max_bytes", c.Cache.L1.MaxBytes)
	positive(v, "cache.l2.timeout", c.Cache.L2.Timeout)
	if c.Cache.L2.KeyPrefix == "" {
		v.problem("cache.l2.key_prefix", "must not be empty: the Valkey is shared, so every cache key needs a prefix (leave the key out for sheepdog:)")
	}
	v.dsn(c.Postgres.DSN)
	if c.Postgres.MaxConns < 0 {
		v.problem("postgres.max_conns", "must be 0 (pgx's default) or above, got %d", c.Postgres.MaxConns)
	}
	if c.Telemetry.ServiceName == "" {
		v.problem("telemetry.service_name", "must not be empty")
	}
	if !slices.Contains([]string{"otlp", "stdout", "none"}, c.Telemetry.Traces) {
		v.problem("telemetry.traces", "unknown exporter %q (want otlp, stdout or none)", c.Telemetry.Traces)
	}
	v.routes(c)
}

// problem reports at the line of path, or of its nearest parent that the
// file spells out: a missing key is reported where its block is.
// A value the decoder could not read was reported already, and is not
// reported again for being empty or zero.
func (v validator) problem(path, format string, args ...any) {
	line := 0
	for p := path; p != ""; p = parentKey(p) {
		if v.unreadable[p] {
			return
		}
		if l, ok := v.lines[p]; ok && line == 0 {
			line = l
		}
	}
	v.add(line, path, format, args...)
}

func (v validator) lineOf(path string) int {
	for p := path; p != ""; p = parentKey(p) {
		if line, ok := v.lines[p]; ok {
			return line
		}
	}
	return 1
}

// parentKey strips the last step of a key path: "routes[2](p).cache"
// gives "routes[2](p)", which gives "routes[2]", then "routes", then "".
func parentKey(path string) string {
	if i := strings.LastIndexAny(path, ".[("); i >= 0 {
		return path[:i]
	}
	return ""
}

// positive reports a duration, size or count that must be above zero.
func positive[T ~int | ~int64](v validator, path string, x T) {
	if x <= 0 {
		v.problem(path, "must be above zero, got %v", x)
	}
}

// addr checks a listen address: host:port, port 0 taking a free one.
func (v validator) addr(path, s string) { v.hostPort(path, s, 0) }

// hostPort checks host:port with a port from minPort to 65535, and a host
// without spaces or control characters.
func (v validator) hostPort(path, s string, minPort int) {
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < minPort || n > 65535) {
			err = fmt.Errorf("port %d out of range", n)
		}
	}
	if err == nil && strings.IndexFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		err = fmt.Errorf("space in host %q", host)
	}
	if err != nil {
		v.problem(path, "bad address %q (want host:port, like 127.0.0.1:%d)", s, max(minPort, 8080))
	}
}

// addrs checks addresses to dial: a port of 0 names no server.
func (v validator) addrs(path string, list []string) {
	for i, s := range list {
		v.hostPort(fmt.Sprintf("%s[%d]", path, i), s, 1)
	}
}

func (v validator) upstream(u *Upstream) {
	switch p, err := url.Parse(u.URL); {
	case u.URL == "":
		v.problem("upstream.url", "required: the Style Shepherd app, like http://127.0.0.1:3001")
	case err != nil || p.Scheme != "http" || p.Hostname() == "":
		v.problem("upstream.url", "bad url %q (want http://host:port)", u.URL)
	case p.User != nil || p.RawQuery != "" || p.Fragment != "" || (p.Path != "" && p.Path != "/"):
		v.problem("upstream.url", "bad url %q: only http://host:port (requests keep their own path)", u.URL)
	case p.Port() != "":
		if n, err := strconv.Atoi(p.Port()); err != nil || n < 1 || n > 65535 {
			v.problem("upstream.url", "bad url %q: port %s out of range (want 1 to 65535)", u.URL, p.Port())
		}
	}
	positive(v, "upstream.timeout", u.Timeout)
	positive(v, "upstream.max_conns", u.MaxConns)
	positive(v, "upstream.idle_timeout", u.IdleTimeout)
	if !strings.HasPrefix(u.HealthPath, "/") {
		v.problem("upstream.health_path", "must start with /, got %q", u.HealthPath)
	}
}

// MaxHeaderSizeLimit bounds server.max_header_size.
const MaxHeaderSizeLimit ByteSize = 1 << 20

func (v validator) server(s *Server) {
	positive(v, "server.max_body_size", s.MaxBodySize)
	positive(v, "server.max_header_size", s.MaxHeaderSize)
	if s.MaxHeaderSize > MaxHeaderSizeLimit {
		// It is every connection's read buffer: 8GiB would be 8GiB each.
		v.problem("server.max_header_size", "at most %v (every connection's read buffer is this size), got %v",
			MaxHeaderSizeLimit, s.MaxHeaderSize)
	}
	positive(v, "server.max_conns", s.MaxConns)
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"server.read_timeout", s.ReadTimeout},
		{"server.write_timeout", s.WriteTimeout},
		{"server.idle_timeout", s.IdleTimeout},
		{"server.shutdown_grace", s.ShutdownGrace},
	} {
		positive(v, d.key, d.val)
	}
}

// scope is what a route's templates may refer to.
type scope struct {
	params map[string]bool // the path template's parameters
	prefix bool            // a path_prefix route: no parameters at all
	broken bool            // the path did not parse: skip {path.X} checks
}

func (v validator) routes(c *Config) {
	if len(c.Routes) == 0 {
		v.problem("routes", "at least one route is required; end the table with a catch-all {match: {path_prefix: /api/}, pass: {}}")
		return
	}
	names := make(map[string]int)
	postgresSink := ""
	for i := range c.Routes {
		r := &c.Routes[i]
		rk := v.routeKeys[i]
		switch line, dup := names[r.Name]; {
		case r.Name == "":
			v.problem(rk+".name", "required: a unique name such as products")
		case !routeNameRE.MatchString(r.Name):
			v.problem(rk+".name", "bad name %q (want lower-case letters, digits, - and _)", r.Name)
		case dup:
			v.problem(rk+".name", "duplicate route name %q (first at line %d)", r.Name, line)
		default:
			names[r.Name] = v.lineOf(rk + ".name")
		}
		sc := v.match(rk+".match", r)
		if !sc.broken {
			for j := range i {
				if shadows(&c.Routes[j], r) {
					v.problem(rk+".match", "never matched: %s, earlier in the table, takes every request this route would (first match wins)", v.routeKeys[j])
					break
				}
			}
		}
		v.action(rk, r)
		if r.Cache != nil {
			v.cacheRule(rk+".cache", r.Cache, sc)
			if len(r.Invalidates) > 0 {
				v.problem(rk+".invalidates", "a cache route does not write: invalidates belongs on pass and batch routes")
			}
		}
		if r.Batch != nil {
			v.batchRule(rk+".batch", r.Batch, sc, c.Cache.L2.Addrs)
			if r.Batch.Sink == SinkPostgres && postgresSink == "" {
				postgresSink = rk + ".batch.sink"
			}
		}
		v.templates(rk+".invalidates", r.Invalidates, sc, false)
	}
	if postgresSink != "" && c.Postgres.DSN == "" {
		line, ok := v.lines["postgres.dsn"]
		if !ok {
			line = v.lineOf(postgresSink)
		}
		v.add(line, "postgres.dsn", "required by the postgres sink at %s", postgresSink)
	}
}

// action checks that the route has exactly one of cache, batch and pass.
func (v validator) action(rk string, r *Route) {
	var set []string
	for _, a := range []struct {
		name string
		on   bool
	}{{"cache", r.Cache != nil}, {"batch", r.Batch != nil}, {"pass", r.Pass != nil}} {
		if a.on {
			set = append(set, a.name)
		}
	}
	switch len(set) {
	case 0:
		v.problem(rk, "a route needs one action: cache, batch or pass")
	case 1:
	default:
		v.problem(rk+"."+set[1], "a route takes one action, not %s", strings.Join(set, " and "))
	}
	if r.Cache != nil {
		switch r.Match.Method {
		case "PUT", "PATCH", "DELETE":
			v.problem(rk+".match.method", "a cache route answers reads from the cache, and %s writes: use pass or batch", r.Match.Method)
		case "", "GET", "HEAD":
		default:
			// POST, or any method that may carry a body (SEARCH, QUERY):
			// an unkeyed body is neither keyed nor forwarded.
			if len(r.Cache.Key.Body) == 0 {
				v.problem(rk+".cache.key.body", "required on a %s cache route: without it every %s shares one entry", r.Match.Method, r.Match.Method)
			}
		}
	}
	if r.Batch != nil {
		switch r.Match.Method {
		case "":
			v.problem(rk+".match", "a batch route needs a method, such as POST")
		case "GET", "HEAD":
			v.problem(rk+".match.method", "a batch route takes writes, not %s", r.Match.Method)
		}
	}
}

func (v validator) match(mk string, r *Route) scope {
	m := r.Match
	switch {
	case m.Method == "":
	case !isToken(m.Method):
		v.problem(mk+".method", "bad method %q (want a token such as GET or POST)", m.Method)
	case m.Method != strings.ToUpper(m.Method):
		v.problem(mk+".method", "bad method %q (methods are upper case: %s)", m.Method, strings.ToUpper(m.Method))
	}
	switch {
	case m.Path != "" && m.PathPrefix != "":
		v.problem(mk+".path_prefix", "path and path_prefix exclude each other: keep one")
		return scope{broken: true}
	case m.PathPrefix != "":
		if !strings.HasPrefix(m.PathPrefix, "/") {
			v.problem(mk+".path_prefix", "must start with /, got %q", m.PathPrefix)
		} else if strings.ContainsAny(m.PathPrefix, "{}?#* \t") {
			v.problem(mk+".path_prefix", "%q: a prefix is literal (use path for {parameters})", m.PathPrefix)
		} else if err := prefixProblem(m.PathPrefix); err != nil {
			v.problem(mk+".path_prefix", "%v", err)
		}
		return scope{prefix: true}
	case m.Path != "":
		segs, err := ParsePath(m.Path)
		if err != nil {
			v.problem(mk+".path", "%v", err)
			return scope{broken: true}
		}
		return scope{params: pathParams(segs)}
	case v.unreadable[mk+".path"] || v.unreadable[mk+".path_prefix"]:
		return scope{broken: true}
	default:
		v.problem(mk, "needs path or path_prefix")
		return scope{broken: true}
	}
}

// neverStored are statuses a shared cache must not keep whatever a route
// says: 400, 413 and 431 describe one client's request, not the resource.
var neverStored = []int{400, 413, 431}

func (v validator) cacheRule(ck string, c *CacheRule, sc scope) {
	switch {
	case c.TTL == 0:
		v.problem(ck+".ttl", "required: how long an answer stays fresh, like 30s")
	case c.TTL < 0:
		v.problem(ck+".ttl", "must be above zero, got %v", c.TTL)
	}
	if c.StaleWhileRevalidate < 0 {
		v.problem(ck+".stale_while_revalidate", "must not be negative, got %v", c.StaleWhileRevalidate)
	}
	if c.StaleIfError < 0 {
		v.problem(ck+".stale_if_error", "must not be negative, got %v", c.StaleIfError)
	}
	v.keyFields(ck+".key.query", SourceQuery, c.Key.Query)
	v.keyFields(ck+".key.header", SourceHeader, c.Key.Header)
	v.keyFields(ck+".key.body", SourceBody, c.Key.Body)
	// Cookie names follow the token syntax of header names.
	v.keyFields(ck+".key.cookie", SourceHeader, c.Key.Cookie)
	v.templates(ck+".tags", c.Tags, sc, false)
	v.tagsKeyed(ck, c)
	if len(c.Statuses) == 0 {
		v.problem(ck+".statuses", "list at least one status, or leave the key out for the defaults")
	}
	seen := make(map[int]bool)
	for i, s := range c.Statuses {
		sk := fmt.Sprintf("%s.statuses[%d]", ck, i)
		switch {
		case s < 100 || s > 599:
			v.problem(sk, "bad status %d (want 100 to 599)", s)
		case s >= 500 || slices.Contains(neverStored, s):
			v.problem(sk, "status %d is never cached (5xx, 400, 413 and 431 are refused)", s)
		case seen[s]:
			v.problem(sk, "status %d listed twice", s)
		}
		seen[s] = true
	}
}

// tagsKeyed checks that a tag reads only values the key holds (the path
// always is): requests that differ in another value share one entry, so
// its tag would name only the value of the request that stored it, and a
// write of another would not drop it.
func (v validator) tagsKeyed(ck string, c *CacheRule) {
	keyed := map[Source][]string{SourceQuery: c.Key.Query, SourceHeader: c.Key.Header, SourceBody: c.Key.Body}
	for i, raw := range c.Tags {
		t, err := ParseTemplate(raw)
		if err != nil {
			continue // reported by templates
		}
		for _, p := range t {
			fields, ok := keyed[p.Source]
			if !ok {
				continue
			}
			inKey := slices.ContainsFunc(fields, func(f string) bool {
				kf, err := ParseKeyField(f)
				return err == nil && (kf.Name == p.Name || (p.Source == SourceHeader && strings.EqualFold(kf.Name, p.Name)))
			})
			if !inKey {
				v.problem(fmt.Sprintf("%s.tags[%d]", ck, i), "{%s.%s} is not in the key: add %s to key.%s, or requests that differ in it share one entry under one tag",
					p.Source, p.Name, p.Name, p.Source)
			}
		}
	}
}

func (v validator) keyFields(path string, src Source, list []string) {
	seen := make(map[string]bool)
	for i, s := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		f, err := ParseKeyField(s)
		if err == nil {
			err = checkName(src, f.Name)
		}
		switch {
		case err != nil:
			v.problem(p, "%v", err)
		case seen[f.Name]:
			v.problem(p, "%s listed twice", f.Name)
		}
		seen[f.Name] = true
	}
}

// sinkKeys are the batch keys that belong to one sink only.
var sinkKeys = []struct {
	sink string
	keys []string
}{
	{SinkHTTP, []string{"url", "wrap", "split"}},
	{SinkValkey, []string{"op", "key", "value", "ttl", "ttl_default", "addrs"}},
	{SinkPostgres, []string{"table", "columns", "returning", "when_down"}},
}

func (v validator) batchRule(bk string, b *BatchRule, sc scope, l2Addrs []string) {
	positive(v, bk+".max_items", b.MaxItems)
	positive(v, bk+".max_bytes", b.MaxBytes)
	positive(v, bk+".max_wait", b.MaxWait)
	positive(v, bk+".queue", b.Queue)
	positive(v, bk+".max_in_flight", b.MaxInFlight)
	if b.Queue > 0 && b.Queue < b.MaxItems {
		v.problem(bk+".queue", "queue %d is smaller than max_items %d", b.Queue, b.MaxItems)
	}
	for _, s := range sinkKeys {
		for _, k := range s.keys {
			if _, set := v.lines[bk+"."+k]; set && s.sink != b.Sink {
				v.problem(bk+"."+k, "applies only to %s sinks", s.sink)
			}
		}
	}
	switch b.Sink {
	case SinkHTTP:
		if b.URL == "" {
			v.problem(bk+".url", "required: the batch endpoint's path on the upstream")
		} else if !strings.HasPrefix(b.URL, "/") {
			v.problem(bk+".url", "must be a path starting with /, got %q", b.URL)
		} else if i := strings.IndexFunc(b.URL, func(r rune) bool { return r <= ' ' || r == 0x7f }); i >= 0 {
			v.problem(bk+".url", "%q has %q at byte %d: a request path holds no spaces or control characters (percent-encode them)", b.URL, b.URL[i:i+1], i)
		}
	case SinkValkey:
		v.valkeySink(bk, b, sc, l2Addrs)
	case SinkPostgres:
		v.postgresSink(bk, b, sc)
	case "":
		v.problem(bk+".sink", "required: http, valkey or postgres")
	default:
		v.problem(bk+".sink", "unknown sink %q (want http, valkey or postgres)", b.Sink)
	}
}

func (v validator) valkeySink(bk string, b *BatchRule, sc scope, l2Addrs []string) {
	v.addrs(bk+".addrs", b.Addrs)
	if len(b.Addrs) == 0 && len(l2Addrs) == 0 && !v.unreadable["cache.l2.addrs"] {
		v.problem(bk+".addrs", "required: a valkey sink writes to these addresses, or else to cache.l2.addrs, and neither is set")
	}
	if !slices.Contains([]string{OpSet, OpDel, OpExpire, OpBatch}, b.Op) {
		v.problem(bk+".op", "unknown op %q (want set, del, expire or batch)", b.Op)
		return
	}
	// op batch takes its keys, values and ttls from the body's operations.
	need := map[string]bool{"key": b.Op != OpBatch, "value": b.Op == OpSet, "ttl": b.Op == OpExpire}
	allowed := map[string]bool{"key": b.Op != OpBatch, "value": b.Op == OpSet, "ttl": b.Op == OpSet || b.Op == OpExpire}
	switch {
	case b.TTLDefault < 0 || b.TTLDefault > MaxTTLSeconds:
		v.problem(bk+".ttl_default", "want a whole number of seconds, 0 to %d, got %d", MaxTTLSeconds, b.TTLDefault)
	case b.TTLDefault > 0 && !allowed["ttl"]:
		v.problem(bk+".ttl_default", "op %s takes no ttl", b.Op)
	}
	for _, f := range []struct{ key, tmpl string }{{"key", b.Key}, {"value", b.Value}, {"ttl", b.TTL}} {
		fk := bk + "." + f.key
		switch {
		case f.tmpl == "" && need[f.key]:
			v.problem(fk, "required for op %s", b.Op)
		case f.tmpl != "" && !allowed[f.key]:
			v.problem(fk, "op %s takes no %s", b.Op, f.key)
		case f.key == "ttl" && f.tmpl != "":
			v.ttl(fk, f.tmpl, sc)
		case f.tmpl != "":
			v.template(fk, f.tmpl, sc, true)
		}
	}
}

// ttl checks a valkey sink's ttl: whole seconds, or one placeholder whose
// default, if it has one, is whole seconds. A falsy literal or default
// (0, null, false) stands for ttl_default, as at run time.
func (v validator) ttl(path, s string, sc scope) {
	v.template(path, s, sc, true)
	t, err := ParseTemplate(s)
	if err != nil || len(t) == 0 {
		return // reported by template
	}
	p := t[0]
	switch {
	case len(t) > 1:
		v.problem(path, "a ttl is seconds: a whole number, or one placeholder such as {body.ttl=0}, not %q", s)
	case p.Source == SourceID:
		v.problem(path, "{id:%s} is not a number of seconds", p.IDPrefix)
	case p.IsLiteral() && !ttlText(p.Literal):
		v.problem(path, "%q is not a whole number of seconds, 0 to %d", p.Literal, MaxTTLSeconds)
	case !p.IsLiteral() && p.HasDefault && !ttlText(p.Default):
		v.problem(path, "default %q is not a whole number of seconds, 0 to %d", p.Default, MaxTTLSeconds)
	}
}

// ttlText reports whether a ttl's text is accepted at run time.
func ttlText(s string) bool {
	_, ok := TTLSeconds(s)
	return ok || FalsyTTL(s)
}

func (v validator) postgresSink(bk string, b *BatchRule, sc scope) {
	if b.Table == "" {
		v.problem(bk+".table", "required: the table to insert into")
	} else if !isTableName(b.Table) {
		v.problem(bk+".table", "bad table name %q (want a plain SQL identifier such as orders or myschema.orders)", b.Table)
	}
	if len(b.Columns) == 0 {
		v.problem(bk+".columns", "list at least one column: name: template")
	}
	for _, col := range slices.Sorted(maps.Keys(b.Columns)) {
		ck := bk + ".columns." + col
		if !isSQLIdent(col) {
			v.problem(ck, "bad column name %q (want a plain SQL identifier)", col)
		}
		v.template(ck, b.Columns[col], sc, true)
	}
	if w := b.WhenDown; w != "" && w != WhenDownFail && w != WhenDownPass {
		v.problem(bk+".when_down", "want fail (answer 503) or pass (to the app), got %q", w)
	}
	for _, field := range slices.Sorted(maps.Keys(b.Returning)) {
		rk := bk + ".returning." + field
		if field == "" {
			v.problem(rk, "an answer field needs a name")
		}
		if col := b.Returning[field]; !isSQLIdent(col) {
			v.problem(rk, "bad column name %q (want a plain SQL identifier)", col)
		}
	}
}

// dsn parses postgres.dsn as the postgres sinks will, with pgxpool's own
// parser, so that a DSN it cannot read is reported here with its line and
// not when the proxy starts. pgx echoes the DSN in its error with the
// password masked as best it can; the echo is cut, so no password is ever
// printed, and the rest is pgx's own message.
func (v validator) dsn(dsn string) {
	if dsn == "" {
		return
	}
	_, err := pgxpool.ParseConfig(dsn)
	if err == nil {
		return
	}
	v.problem("postgres.dsn", "%s", dsnError(dsn, err))
}

// dsnError is pgx's message for err without the DSN it quotes.
func dsnError(dsn string, err error) string {
	const quote = "cannot parse `"
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	// Redaction only masks and never adds a backquote, so in a DSN with
	// none the first backquote after the opening one closes the quote.
	if errors.As(err, &pe) && !strings.Contains(dsn, "`") && strings.HasPrefix(msg, quote) {
		if _, rest, ok := strings.Cut(msg[len(quote):], "`"); ok {
			return "cannot parse the DSN" + rest
		}
	}
	if inner := errors.Unwrap(err); inner != nil {
		return fmt.Sprintf("cannot parse the DSN (%v)", inner)
	}
	return "cannot parse the DSN"
}

// isSQLIdent accepts names that need no quoting, within PostgreSQL's
// 63-byte limit, so a sink can build its statement without escaping.
func isSQLIdent(s string) bool { return isIdent(s) && len(s) <= 63 }

func isTableName(s string) bool {
	schema, table, qualified := strings.Cut(s, ".")
	if !qualified {
		return isSQLIdent(s)
	}
	return isSQLIdent(schema) && isSQLIdent(table)
}

func (v validator) templates(path string, list []string, sc scope, allowID bool) {
	for i, s := range list {
		v.template(fmt.Sprintf("%s[%d]", path, i), s, sc, allowID)
	}
}

// template checks one value template, and that what it reads exists:
// {path.X} must be a parameter of the route's path.
func (v validator) template(path, s string, sc scope, allowID bool) {
	t, err := ParseTemplate(s)
	if err != nil {
		v.problem(path, "%v", err)
		return
	}
	if len(t) == 0 {
		v.problem(path, "must not be empty")
	}
	for _, p := range t {
		switch {
		case p.Source == SourceID && !allowID:
			v.problem(path, "{id:%s} makes a new value each time, so it belongs only in batch values", p.IDPrefix)
		case p.Source != SourcePath || sc.broken || sc.params[p.Name]:
		case sc.prefix:
			v.problem(path, "{path.%s}: a path_prefix route has no path parameters", p.Name)
		default:
			v.problem(path, "{path.%s}: the route's path has no parameter %s (it has: %s)", p.Name, p.Name, paramList(sc.params))
		}
	}
}

func paramList(params map[string]bool) string {
	if len(params) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(params)), ", ")
}
