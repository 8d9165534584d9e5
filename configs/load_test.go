package configs

import (
	"errors"
	"strings"
	"testing"
)

// noEnv is an environment where only TEST_SET is set, so tests never read
// or change the process environment.
func noEnv(name string) (string, bool) {
	if name == "TEST_SET" {
		return "set", true
	}
	return "", false
}

// mapEnv is an environment made of m.
func mapEnv(m map[string]string) LookupEnv {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// wantErr checks err against a case's expected error text, empty for none,
// and reports whether an error was expected, so the case is done.
func wantErr(t *testing.T, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	return want != ""
}

// head is the valid start of most bad files below: routes begin on line 3.
const head = "upstream: {url: http://127.0.0.1:3001}\nroutes:\n"

// catchAll is a valid last route.
const catchAll = "  - {name: all, match: {path_prefix: /api/}, pass: {}}\n"

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every line of the error, in order
	}{
		{
			name: "unknown top-level key",
			yaml: "upstream: {url: http://127.0.0.1:3001}\nlistn: 127.0.0.1:8080\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:2: listn: unknown key (known: listen, admin, upstream, server, cache, postgres, telemetry, routes)"},
		},
		{
			name: "unknown nested key",
			yaml: "upstream:\n  url: http://127.0.0.1:3001\n  timout: 5s\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:3: upstream.timout: unknown key (known: url, timeout, max_conns, idle_timeout, health_path)"},
		},
		{
			name: "unknown key in a route",
			yaml: head + "  - name: products\n    match: {method: GET, path: /p}\n    cache: {ttl: 1s, tag: [x]}\n" + catchAll,
			want: []string{"bad.yaml:5: routes[0](products).cache.tag: unknown key (known: ttl, stale_while_revalidate, stale_if_error, key, tags, statuses)"},
		},
		{
			name: "unknown key in pass",
			yaml: head + "  - {name: all, match: {path_prefix: /}, pass: {stream: true}}\n",
			want: []string{"bad.yaml:3: routes[0](all).pass.stream: unknown key (pass takes no keys: write pass: {})"},
		},
		{
			name: "negative pool size",
			yaml: "upstream: {url: http://127.0.0.1:3001}\npostgres: {max_conns: -1}\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:2: postgres.max_conns: must be 0 (pgx's default) or above, got -1"},
		},
		{
			name: "header size past the limit",
			yaml: "upstream: {url: http://127.0.0.1:3001}\nserver: {max_header_size: 8GiB}\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:2: server.max_header_size: at most 1MiB (every connection's read buffer is this size), got 8GiB"},
		},
		{
			name: "duplicate key",
			yaml: "upstream: {url: http://127.0.0.1:3001}\nlisten: 127.0.0.1:1\nlisten: 127.0.0.1:2\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:3: listen: duplicate key (first at line 2)"},
		},
		{
			name: "list where a scalar belongs",
			yaml: "upstream: {url: http://127.0.0.1:3001}\nlisten: [127.0.0.1:1]\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:2: listen: expected a string, got a list"},
		},
		{
			name: "scalar where a list belongs",
			yaml: head + "  - {name: p, match: {path: /p}, cache: {ttl: 1s, tags: products}}\n",
			want: []string{`bad.yaml:3: routes[0](p).cache.tags: expected a list, got "products"`},
		},
		{
			name: "mapping where routes belong",
			yaml: "upstream: {url: http://127.0.0.1:3001}\nroutes: {name: all}\n",
			want: []string{"bad.yaml:2: routes: expected a list of routes, got a mapping"},
		},
		{
			name: "bad int",
			yaml: "upstream: {url: http://127.0.0.1:3001, max_conns: many}\nroutes:\n" + catchAll,
			want: []string{`bad.yaml:1: upstream.max_conns: bad int "many"`},
		},
		{
			name: "bad duration",
			yaml: head + "  - name: p\n    match: {path: /p}\n    cache:\n      ttl: 6x\n" + catchAll,
			want: []string{`bad.yaml:6: routes[0](p).cache.ttl: bad duration "6x"`},
		},
		{
			name: "bad byte size",
			yaml: "upstream: {url: http://127.0.0.1:3001}\ncache: {l1: {max_bytes: 10XB}}\nroutes:\n" + catchAll,
			want: []string{`bad.yaml:2: cache.l1.max_bytes: bad byte size "10XB" (want bytes or a unit: B, KB, MB, GB, KiB, MiB, GiB)`},
		},
		{
			name: "zero where zero makes no sense",
			yaml: "upstream: {url: http://127.0.0.1:3001, timeout: 0s}\ncache: {l2: {timeout: 0s}}\nroutes:\n" + catchAll,
			want: []string{
				"bad.yaml:1: upstream.timeout: must be above zero, got 0s",
				"bad.yaml:2: cache.l2.timeout: must be above zero, got 0s",
			},
		},
		{
			name: "two actions",
			yaml: head + "  - name: p\n    match: {path: /p}\n    cache: {ttl: 1s}\n    pass: {}\n",
			want: []string{"bad.yaml:6: routes[0](p).pass: a route takes one action, not cache and pass"},
		},
		{
			name: "no action",
			yaml: head + "  - name: p\n    match: {path: /p}\n" + catchAll,
			want: []string{"bad.yaml:3: routes[0](p): a route needs one action: cache, batch or pass"},
		},
		{
			name: "path and prefix",
			yaml: head + "  - {name: p, match: {path: /p, path_prefix: /p}, pass: {}}\n",
			want: []string{"bad.yaml:3: routes[0](p).match.path_prefix: path and path_prefix exclude each other: keep one"},
		},
		{
			name: "no path",
			yaml: head + "  - name: p\n    match: {method: GET}\n    pass: {}\n",
			want: []string{"bad.yaml:4: routes[0](p).match: needs path or path_prefix"},
		},
		{
			name: "partial parameter segment",
			yaml: head + "  - {name: p, match: {path: \"/a{b}/c\"}, pass: {}}\n",
			want: []string{`bad.yaml:3: routes[0](p).match.path: path "/a{b}/c": segment "a{b}": a parameter must be a whole segment, like /{id}/`},
		},
		{
			name: "empty segment",
			yaml: head + "  - {name: p, match: {path: /a//b}, pass: {}}\n",
			want: []string{`bad.yaml:3: routes[0](p).match.path: path "/a//b": empty segment (//)`},
		},
		{
			name: "path without leading slash",
			yaml: head + "  - {name: p, match: {path: api/x}, pass: {}}\n",
			want: []string{`bad.yaml:3: routes[0](p).match.path: path "api/x" must start with /`},
		},
		{
			name: "prefix with a parameter",
			yaml: head + "  - {name: p, match: {path_prefix: \"/a/{b}\"}, pass: {}}\n",
			want: []string{`bad.yaml:3: routes[0](p).match.path_prefix: "/a/{b}": a prefix is literal (use path for {parameters})`},
		},
		{
			name: "lower-case method",
			yaml: head + "  - {name: p, match: {method: get, path: /p}, pass: {}}\n",
			want: []string{`bad.yaml:3: routes[0](p).match.method: bad method "get" (methods are upper case: GET)`},
		},
		{
			name: "unknown placeholder source",
			yaml: head + "  - {name: p, match: {path: /p}, cache: {ttl: 1s, tags: [\"s:{cookie.sid}\"]}}\n",
			want: []string{`bad.yaml:3: routes[0](p).cache.tags[0]: template "s:{cookie.sid}": {cookie.sid}: unknown source "cookie" (want path, query, header, body or id)`},
		},
		{
			name: "path placeholder not in the path",
			yaml: head + "  - name: p\n    match: {path: \"/users/{userId}\"}\n    cache:\n      ttl: 1s\n      tags:\n        - \"u:{path.user}\"\n",
			want: []string{"bad.yaml:8: routes[0](p).cache.tags[0]: {path.user}: the route's path has no parameter user (it has: userId)"},
		},
		{
			name: "path placeholder on a prefix route",
			yaml: head + "  - {name: p, match: {method: POST, path_prefix: /p/}, pass: {}, invalidates: [\"{path.id}\"]}\n",
			want: []string{"bad.yaml:3: routes[0](p).invalidates[0]: {path.id}: a path_prefix route has no path parameters"},
		},
		{
			name: "generated id in a tag",
			yaml: head + "  - {name: p, match: {path: /p}, cache: {ttl: 1s, tags: [\"{id:x_}\"]}}\n",
			want: []string{"bad.yaml:3: routes[0](p).cache.tags[0]: {id:x_} makes a new value each time, so it belongs only in batch values"},
		},
		{
			name: "invalidates on a cache route",
			yaml: head + "  - name: p\n    match: {path: /p}\n    cache: {ttl: 1s}\n    invalidates: [x]\n",
			want: []string{"bad.yaml:6: routes[0](p).invalidates: a cache route does not write: invalidates belongs on pass and batch routes"},
		},
		{
			name: "missing upstream url",
			yaml: "upstream: {timeout: 1s}\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:1: upstream.url: required: the Style Shepherd app, like http://127.0.0.1:3001"},
		},
		{
			name: "https upstream",
			yaml: "upstream: {url: \"https://app.example\"}\nroutes:\n" + catchAll,
			want: []string{`bad.yaml:1: upstream.url: bad url "https://app.example" (want http://host:port)`},
		},
		{
			name: "duplicate route name",
			yaml: head + "  - {name: all, match: {path: /one}, pass: {}}\n" + catchAll,
			want: []string{`bad.yaml:4: routes[1](all).name: duplicate route name "all" (first at line 3)`},
		},
		{
			name: "routes that can never match",
			yaml: head + catchAll +
				"  - {name: products, match: {method: GET, path: /api/products}, cache: {ttl: 10s}}\n" +
				"  - {name: a, match: {method: GET, path: \"/u/{id}\"}, pass: {}}\n" +
				"  - {name: b, match: {method: HEAD, path: \"/u/{userId}\"}, pass: {}}\n" +
				"  - {name: c, match: {method: POST, path: \"/u/{id}\"}, pass: {}}\n" +
				"  - {name: d, match: {path: \"/u/me\"}, pass: {}}\n" +
				"  - {name: e, match: {path: \"/x/a%20b/../c\"}, pass: {}}\n" +
				"  - {name: f, match: {path_prefix: /x/%7Euser/}, pass: {}}\n",
			want: []string{
				"bad.yaml:4: routes[1](products).match: never matched: routes[0](all), earlier in the table, takes every request this route would (first match wins)",
				"bad.yaml:6: routes[3](b).match: never matched: routes[2](a), earlier in the table, takes every request this route would (first match wins)",
				`bad.yaml:9: routes[6](e).match.path: path "/x/a%20b/../c": segment "a%20b": requests are matched decoded, so %XX never matches; write the character itself`,
				`bad.yaml:10: routes[7](f).match.path_prefix: segment "%7Euser": requests are matched decoded, so %XX never matches; write the character itself`,
			},
		},
		{
			name: "bad route name",
			yaml: head + "  - {name: Products, match: {path: /p}, pass: {}}\n",
			want: []string{`bad.yaml:3: routes[0].name: bad name "Products" (want lower-case letters, digits, - and _)`},
		},
		{
			name: "bad statuses",
			yaml: head + "  - name: p\n    match: {path: /p}\n    cache:\n      ttl: 1s\n      statuses:\n        - 200\n        - 503\n        - 99\n        - 413\n",
			want: []string{
				"bad.yaml:9: routes[0](p).cache.statuses[1]: status 503 is never cached (5xx, 400, 413 and 431 are refused)",
				"bad.yaml:10: routes[0](p).cache.statuses[2]: bad status 99 (want 100 to 599)",
				"bad.yaml:11: routes[0](p).cache.statuses[3]: status 413 is never cached (5xx, 400, 413 and 431 are refused)",
			},
		},
		{
			name: "unknown sink",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch: {sink: kafka}\n",
			want: []string{`bad.yaml:5: routes[0](w).batch.sink: unknown sink "kafka" (want http, valkey or postgres)`},
		},
		{
			name: "http sink without url",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: http\n",
			want: []string{"bad.yaml:5: routes[0](w).batch.url: required: the batch endpoint's path on the upstream"},
		},
		{
			name: "valkey set without value",
			yaml: head + "  - name: w\n    match: {method: POST, path: \"/w/{k}\"}\n    batch:\n      sink: valkey\n      key: \"{path.k}\"\n      addrs: [127.0.0.1:6379]\n",
			want: []string{"bad.yaml:5: routes[0](w).batch.value: required for op set"},
		},
		{
			name: "valkey del with a value",
			yaml: head + "  - name: w\n    match: {method: POST, path: \"/w/{k}\"}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], op: del, key: \"{path.k}\", value: x}\n",
			want: []string{"bad.yaml:5: routes[0](w).batch.value: op del takes no value"},
		},
		{
			name: "valkey batch with key, value and ttl",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: valkey\n      op: batch\n      key: \"{body.k}\"\n      value: \"{body.v}\"\n      ttl: \"{body.ttl=0}\"\n      addrs: [127.0.0.1:6379]\n",
			want: []string{
				"bad.yaml:8: routes[0](w).batch.key: op batch takes no key",
				"bad.yaml:9: routes[0](w).batch.value: op batch takes no value",
				"bad.yaml:10: routes[0](w).batch.ttl: op batch takes no ttl",
			},
		},
		{
			name: "valkey batch with a ttl only",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], op: batch, ttl: \"60\"}\n",
			want: []string{"bad.yaml:5: routes[0](w).batch.ttl: op batch takes no ttl"},
		},
		{
			name: "valkey negative ttl_default",
			yaml: head + "  - name: w\n    match: {method: POST, path: \"/w/{k}\"}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], key: \"{path.k}\", value: \"{body}\", ttl_default: -1}\n",
			want: []string{"bad.yaml:5: routes[0](w).batch.ttl_default: want a whole number of seconds, 0 to 4611686018427387, got -1"},
		},
		{
			name: "valkey ttls that can never be seconds",
			yaml: head +
				"  - name: a\n    match: {method: POST, path: \"/a/{k}\"}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], key: \"{path.k}\", value: \"{body}\", ttl: ten}\n" +
				"  - name: b\n    match: {method: POST, path: \"/b/{k}\"}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], key: \"{path.k}\", value: \"{body}\", ttl: \"-5\"}\n" +
				"  - name: c\n    match: {method: POST, path: \"/c/{k}\"}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], key: \"{path.k}\", value: \"{body}\", ttl: \"{id:t}\"}\n" +
				"  - name: d\n    match: {method: POST, path: \"/d/{k}\"}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], key: \"{path.k}\", value: \"{body}\", ttl: \"{body.ttl=abc}\"}\n" +
				"  - name: e\n    match: {method: POST, path: \"/e/{k}\"}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], key: \"{path.k}\", value: \"{body}\", ttl: \"1{body.ttl}\"}\n",
			want: []string{
				`bad.yaml:5: routes[0](a).batch.ttl: "ten" is not a whole number of seconds, 0 to 4611686018427387`,
				`bad.yaml:8: routes[1](b).batch.ttl: "-5" is not a whole number of seconds, 0 to 4611686018427387`,
				"bad.yaml:11: routes[2](c).batch.ttl: {id:t} is not a number of seconds",
				`bad.yaml:14: routes[3](d).batch.ttl: default "abc" is not a whole number of seconds, 0 to 4611686018427387`,
				`bad.yaml:17: routes[4](e).batch.ttl: a ttl is seconds: a whole number, or one placeholder such as {body.ttl=0}, not "1{body.ttl}"`,
			},
		},
		{
			name: "ttl_default on an http sink",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch: {sink: http, url: /batch, ttl_default: 50}\n",
			want: []string{"bad.yaml:5: routes[0](w).batch.ttl_default: applies only to valkey sinks"},
		},
		{
			name: "valkey del with ttl_default",
			yaml: head + "  - name: w\n    match: {method: POST, path: \"/w/{k}\"}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], op: del, key: \"{path.k}\", ttl_default: 60}\n",
			want: []string{"bad.yaml:5: routes[0](w).batch.ttl_default: op del takes no ttl"},
		},
		{
			name: "valkey unknown op",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch: {sink: valkey, addrs: [127.0.0.1:6379], op: mset, key: k}\n",
			want: []string{`bad.yaml:5: routes[0](w).batch.op: unknown op "mset" (want set, del, expire or batch)`},
		},
		{
			name: "key of another sink",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: http\n      url: /batch\n      table: orders\n",
			want: []string{"bad.yaml:8: routes[0](w).batch.table: applies only to postgres sinks"},
		},
		{
			name: "postgres when_down unknown",
			yaml: "upstream: {url: http://127.0.0.1:3001}\npostgres: {dsn: postgres://x}\nroutes:\n  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: postgres\n      table: orders\n      columns: {id: \"{id:o_}\"}\n      when_down: retry\n",
			want: []string{`bad.yaml:10: routes[0](w).batch.when_down: want fail (answer 503) or pass (to the app), got "retry"`},
		},
		{
			name: "when_down of another sink",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: http\n      url: /batch\n      when_down: pass\n",
			want: []string{"bad.yaml:8: routes[0](w).batch.when_down: applies only to postgres sinks"},
		},
		{
			name: "postgres sink without table and columns",
			yaml: "upstream: {url: http://127.0.0.1:3001}\npostgres: {dsn: postgres://x}\nroutes:\n  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: postgres\n",
			want: []string{
				"bad.yaml:6: routes[0](w).batch.table: required: the table to insert into",
				"bad.yaml:6: routes[0](w).batch.columns: list at least one column: name: template",
			},
		},
		{
			name: "postgres sink without dsn",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: postgres\n      table: orders\n      columns: {id: \"{id:o_}\"}\n",
			want: []string{"bad.yaml:6: postgres.dsn: required by the postgres sink at routes[0](w).batch.sink"},
		},
		{
			name: "bad column name",
			yaml: "upstream: {url: http://127.0.0.1:3001}\npostgres: {dsn: postgres://x}\nroutes:\n  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: postgres\n      table: orders\n      columns: {\"id; drop table x\": \"{body.id}\"}\n",
			want: []string{`bad.yaml:9: routes[0](w).batch.columns.id; drop table x: bad column name "id; drop table x" (want a plain SQL identifier)`},
		},
		{
			name: "path with too many segments",
			yaml: head + "  - {name: p, match: {path: /a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q}, pass: {}}\n",
			want: []string{`bad.yaml:3: routes[0](p).match.path: path "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q" has 17 segments, more than the 16 allowed`},
		},
		{
			name: "path with too many parameters",
			yaml: head + "  - name: p\n    match:\n      path: \"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}\"\n    pass: {}\n",
			want: []string{`bad.yaml:5: routes[0](p).match.path: path "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}" has 9 parameters, more than the 8 allowed`},
		},
		{
			name: "valkey sink with no addresses anywhere",
			yaml: head + "  - name: w\n    match: {method: POST, path: \"/w/{k}\"}\n    batch:\n      sink: valkey\n      key: \"{path.k}\"\n      value: \"{body}\"\n",
			want: []string{"bad.yaml:5: routes[0](w).batch.addrs: required: a valkey sink writes to these addresses, or else to cache.l2.addrs, and neither is set"},
		},
		{
			name: "postgres dsn pgx cannot parse",
			yaml: "upstream: {url: http://127.0.0.1:3001}\npostgres:\n  dsn: not a dsn\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:3: postgres.dsn: cannot parse the DSN: failed to parse as keyword/value (invalid keyword/value)"},
		},
		{
			name: "postgres dsn error never shows the password",
			yaml: "upstream: {url: http://127.0.0.1:3001}\npostgres: {dsn: \"postgres://u:s3cret@db:port/x\"}\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:2: postgres.dsn: cannot parse the DSN: invalid port"},
		},
		{
			name: "upstream port 0",
			yaml: "upstream: {url: \"http://127.0.0.1:0\"}\nroutes:\n" + catchAll,
			want: []string{`bad.yaml:1: upstream.url: bad url "http://127.0.0.1:0": port 0 out of range (want 1 to 65535)`},
		},
		{
			name: "upstream port above 65535",
			yaml: "upstream: {url: \"http://127.0.0.1:65536\"}\nroutes:\n" + catchAll,
			want: []string{`bad.yaml:1: upstream.url: bad url "http://127.0.0.1:65536": port 65536 out of range (want 1 to 65535)`},
		},
		{
			name: "http sink url with a space",
			yaml: head + "  - name: w\n    match: {method: POST, path: /w}\n    batch:\n      sink: http\n      url: \"/batch items\"\n",
			want: []string{`bad.yaml:7: routes[0](w).batch.url: "/batch items" has " " at byte 6: a request path holds no spaces or control characters (percent-encode them)`},
		},
		{
			name: "http sink url with a control character",
			yaml: head + "  - {name: w, match: {method: POST, path: /w}, batch: {sink: http, url: \"/batch\\r\\nX: y\"}}\n",
			want: []string{`bad.yaml:3: routes[0](w).batch.url: "/batch\r\nX: y" has "\r" at byte 6: a request path holds no spaces or control characters (percent-encode them)`},
		},
		{
			name: "empty cache key prefix",
			yaml: "upstream: {url: http://127.0.0.1:3001}\ncache:\n  l2:\n    key_prefix: \"\"\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:4: cache.l2.key_prefix: must not be empty: the Valkey is shared, so every cache key needs a prefix (leave the key out for sheepdog:)"},
		},
		{
			name: "batch on GET",
			yaml: head + "  - {name: w, match: {method: GET, path: /w}, batch: {sink: http, url: /b}}\n",
			want: []string{"bad.yaml:3: routes[0](w).match.method: a batch route takes writes, not GET"},
		},
		{
			name: "unset environment variable",
			yaml: "upstream: {url: \"${NOT_SET_ANYWHERE}\"}\nroutes:\n" + catchAll,
			want: []string{
				"bad.yaml:1: upstream.url: environment variable NOT_SET_ANYWHERE is not set (give a default with ${NOT_SET_ANYWHERE:-value})",
			},
		},
		{
			name: "bad telemetry exporter",
			yaml: "upstream: {url: http://127.0.0.1:3001}\ntelemetry: {traces: jaeger}\nroutes:\n" + catchAll,
			want: []string{`bad.yaml:2: telemetry.traces: unknown exporter "jaeger" (want otlp, stdout or none)`},
		},
		{
			name: "no routes",
			yaml: "upstream: {url: http://127.0.0.1:3001}\n",
			want: []string{"bad.yaml:1: routes: at least one route is required; end the table with a catch-all {match: {path_prefix: /api/}, pass: {}}"},
		},
		{
			name: "alias",
			yaml: "upstream: &u {url: http://127.0.0.1:3001}\nadmin: *u\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:2: admin: YAML aliases (*u) are not supported: write the value out"},
		},
		{
			// A tag changes what a value means (!!binary is base64, a custom
			// tag is an application's own), and reading its text instead
			// would run a config that says something else.
			name: "explicit tags",
			yaml: "upstream: {url: !!str http://127.0.0.1:3001}\nadmin: {token: !!binary c2VjcmV0}\nroutes:\n" +
				"  - {name: p, match: !!map {path_prefix: /}, pass: {}}\n  - {name: q, match: {path: !env Q_PATH}, pass: {}}\n",
			want: []string{
				"bad.yaml:2: admin.token: YAML tags (!!binary) are not supported: write the value plainly",
				"bad.yaml:5: routes[1](q).match.path: YAML tags (!env) are not supported: write the value plainly",
			},
		},
		{
			name: "two documents",
			yaml: "upstream: {url: http://127.0.0.1:3001}\nroutes:\n" + catchAll + "---\nlisten: x\n",
			want: []string{"bad.yaml:4: a config file holds one YAML document; remove this one or the ---"},
		},
		{
			name: "syntax error",
			yaml: "upstream: {url: http://127.0.0.1:3001\nroutes:\n",
			want: []string{"bad.yaml:2: did not find expected ',' or '}'"},
		},
		{
			name: "listen and admin.listen on one address",
			yaml: "listen: 127.0.0.1:9901\nupstream: {url: http://127.0.0.1:3001}\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:1: admin.listen: 127.0.0.1:9901 is listen's address too: the admin listener needs its own"},
		},
		{
			name: "addresses that cannot be dialled or listened on",
			yaml: "listen: \"bad host:8080\"\nupstream: {url: \"http://:3001\"}\ncache: {l2: {addrs: [\"127.0.0.1:0\"]}}\nroutes:\n" + catchAll,
			want: []string{
				`bad.yaml:1: listen: bad address "bad host:8080" (want host:port, like 127.0.0.1:8080)`,
				`bad.yaml:2: upstream.url: bad url "http://:3001" (want http://host:port)`,
				`bad.yaml:3: cache.l2.addrs[0]: bad address "127.0.0.1:0" (want host:port, like 127.0.0.1:8080)`,
			},
		},
		{
			name: "cache blocks on writes",
			yaml: head +
				"  - {name: d, match: {method: DELETE, path: /d}, cache: {ttl: 10s}}\n" +
				"  - {name: s, match: {method: POST, path: /s}, cache: {ttl: 10s}}\n" + catchAll,
			want: []string{
				"bad.yaml:3: routes[0](d).match.method: a cache route answers reads from the cache, and DELETE writes: use pass or batch",
				"bad.yaml:4: routes[1](s).cache.key.body: required on a POST cache route: without it every POST shares one entry",
			},
		},
		{
			name: "tags reading values the key does not hold",
			yaml: head + "  - name: u\n    match: {method: GET, path: \"/u/{id}\"}\n    cache: {ttl: 10s, key: {query: [lang]}, tags: [\"user:{query.userId}\", \"p:{path.id}:{query.lang}\", \"h:{header.X-Tenant}\"]}\n" +
				"  - name: s\n    match: {method: POST, path: /s}\n    cache: {ttl: 10s, key: {body: [q]}, tags: [\"u:{body.u}\"]}\n" + catchAll,
			want: []string{
				"bad.yaml:5: routes[0](u).cache.tags[0]: {query.userId} is not in the key: add userId to key.query, or requests that differ in it share one entry under one tag",
				"bad.yaml:5: routes[0](u).cache.tags[2]: {header.X-Tenant} is not in the key: add X-Tenant to key.header, or requests that differ in it share one entry under one tag",
				"bad.yaml:8: routes[1](s).cache.tags[0]: {body.u} is not in the key: add u to key.body, or requests that differ in it share one entry under one tag",
			},
		},
		{
			name: "a ${...} nested in a default",
			yaml: "upstream: {url: http://127.0.0.1:3001}\nadmin: {token: ${ADMINTOK:-${FALLBACK}}}\nroutes:\n" + catchAll,
			want: []string{"bad.yaml:2: admin.token: a ${...} inside a default is not supported: ${ADMINTOK:-${FALLBACK}"},
		},
		{
			// YAML's own message and line, which a hint about the quoted
			// ${ on line 5 used to replace.
			name: "a syntax error beside a ${ in a flow mapping",
			yaml: "upstream: {url: http://127.0.0.1:3001}\nroutes:\n  - name: a\n    match: {path: \"/u/{userId}\"}\n    cache: {ttl: 10s, tags: [\"user:{path.userId}:${REGION:-eu}\"]}\n  - name: b\n    match: {path: /b}\n     pass: {}\n",
			want: []string{"bad.yaml:6: did not find expected key"}, // route b's mapping, which line 8 breaks
		},
		{
			name: "every problem in one pass, sorted by line",
			yaml: "upstream: {url: ftp://x}\nlisten: nope\nroutes:\n  - {name: p, match: {path: /p}, cache: {ttl: -1s}}\n",
			want: []string{
				`bad.yaml:1: upstream.url: bad url "ftp://x" (want http://host:port)`,
				`bad.yaml:2: listen: bad address "nope" (want host:port, like 127.0.0.1:8080)`,
				"bad.yaml:4: routes[0](p).cache.ttl: must be above zero, got -1s",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseWithEnv("bad.yaml", []byte(tt.yaml), noEnv)
			if err == nil {
				t.Fatalf("Parse accepted the file:\n%s", cfg.RouteTable())
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n  got  %q\n  want %q", got, tt.want)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) != len(tt.want) {
				t.Fatalf("error is not an ErrorList of %d: %#v", len(tt.want), err)
			}
			var one *Error
			if !errors.As(err, &one) || one.File != "bad.yaml" || one.Line < 1 {
				t.Errorf("errors.As(*Error) = %+v", one)
			}
		})
	}
}

// A YAML parser error (as opposed to a scanner error) must name the line
// the problem is on, not the line before it.
func TestSyntaxErrorLine(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		// unclosed flow mapping opened on line 4
		{head + catchAll + "admin: {token: x, listen: 127.0.0.1:9901\n", "bad.yaml:4:"},
		// one } too many on line 4
		{head + catchAll + "admin: {token: x}}\n", "bad.yaml:4:"},
		// text after a quoted scalar on line 4
		{head + catchAll + "admin: {token: 'x' y}\n", "bad.yaml:4:"},
		// undefined tag handle on line 4
		{head + catchAll + "listen: !foo!bar x\n", "bad.yaml:4:"},
	} {
		_, err := ParseWithEnv("bad.yaml", []byte(c.yaml), noEnv)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want an error starting %q", c.yaml, err, c.want)
		}
	}
}

// "$${" stands for a literal "${" wherever a ${NAME} may stand, flow
// mappings included.
func TestLiteralDollarBraceInFlow(t *testing.T) {
	cfg, err := ParseWithEnv("f.yaml", []byte(head+catchAll+"admin: {token: $${TEST_SET}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token != "${TEST_SET}" {
		t.Fatalf("token %q, want ${TEST_SET}", cfg.Admin.Token)
	}
}

// A path_prefix route does not take the path it ends with, less its
// trailing slash: a later path route /api/x/ still takes /api/x, so it is
// not "never matched".
func TestPrefixDoesNotShadowSlashlessPath(t *testing.T) {
	src := "upstream: {url: http://127.0.0.1:3001}\nroutes:\n" +
		"  - {name: sub, match: {path_prefix: /api/x/}, pass: {}}\n" +
		"  - {name: x, match: {path: /api/x/}, cache: {ttl: 1s}}\n" + catchAll
	if _, err := ParseWithEnv("s.yaml", []byte(src), noEnv); err != nil {
		t.Fatalf("refused a route that takes /api/x: %v", err)
	}
}

// A cache route on a method with a body other than POST (SEARCH, QUERY)
// must key the body too: without key.body the proxy neither forwards the
// body nor keys on it, so every such request shares one entry.
func TestBodyMethodCacheNeedsKeyBody(t *testing.T) {
	for _, m := range []string{"SEARCH", "QUERY"} {
		src := head + "  - {name: s, match: {method: " + m + ", path: /s}, cache: {ttl: 10s}}\n" + catchAll
		_, err := ParseWithEnv("b.yaml", []byte(src), noEnv)
		if err == nil || !strings.Contains(err.Error(), "b.yaml:3: routes[0](s).cache.key.body: required") {
			t.Errorf("method %s without key.body: got %v, want a key.body error at line 3", m, err)
		}
	}
}
