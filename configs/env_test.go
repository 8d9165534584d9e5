package configs

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"HOST": "10.0.0.1", "EMPTY": ""}
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${HOST}", want: "10.0.0.1"},
		{in: "http://${HOST}:3001/", want: "http://10.0.0.1:3001/"},
		{in: "${HOST}${HOST}", want: "10.0.0.110.0.0.1"},
		{in: "${MISSING:-127.0.0.1}", want: "127.0.0.1"},
		{in: "${MISSING:-}", want: ""},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${EMPTY}", want: ""},
		{in: "${HOST:-unused}", want: "10.0.0.1"},
		{in: "${MISSING:-a:-b}", want: "a:-b"},
		{in: "$${HOST}", want: "${HOST}"},
		{in: "cost $5 and $HOST", want: "cost $5 and $HOST"},
		{in: "{path.key}", want: "{path.key}"},
		{in: "${MISSING}", err: "environment variable MISSING is not set"},
		{in: "${HOST", err: `unterminated "${HOST"`},
		{in: "${}", err: "bad variable reference ${}"},
		{in: "${A-B}", err: "bad variable reference ${A-B}"},
		{in: "${1X}", err: "bad variable reference ${1X}"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expand(tt.in, mapEnv(env))
			if wantErr(t, err, tt.err) {
				return
			}
			if got != tt.want {
				t.Fatalf("expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestParseExpandsEnvironment checks expansion inside a whole file: every
// kind of scalar, no YAML structure injected, and lines kept.
func TestParseExpandsEnvironment(t *testing.T) {
	env := map[string]string{
		"UP":       "http://127.0.0.1:4000",
		"CONNS":    "64",
		"TIMEOUT":  "3s",
		"L1":       "1MiB",
		"TRICKY":   "a\nb: [c]",
		"PASSWORD": "s3cret",
	}
	src := `upstream: {url: "${UP}", max_conns: "${CONNS}", timeout: "${TIMEOUT}"}
admin: {token: "${TRICKY}"}
cache:
  l1: {max_bytes: "${L1}"}
  l2: {password: "${PASSWORD}", addrs: ["${VALKEY:-127.0.0.1:6379}"], key_prefix: "$${app}:"}
routes:
  - {name: all, match: {path_prefix: "${PREFIX:-/api/}"}, pass: {}}
  - {name: second, match: {path: /second}, pass: {}}
`
	cfg, err := ParseWithEnv("env.yaml", []byte(src), mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"upstream.url", cfg.Upstream.URL, "http://127.0.0.1:4000"},
		{"upstream.max_conns", cfg.Upstream.MaxConns, 64},
		{"upstream.timeout", cfg.Upstream.Timeout.String(), "3s"},
		{"l1.max_bytes", cfg.Cache.L1.MaxBytes, ByteSize(1 << 20)},
		{"admin.token keeps newlines as text", cfg.Admin.Token, "a\nb: [c]"},
		{"l2.password", cfg.Cache.L2.Password, "s3cret"},
		{"l2.addrs default", strings.Join(cfg.Cache.L2.Addrs, ","), "127.0.0.1:6379"},
		{"path_prefix default", cfg.Routes[0].Match.PathPrefix, "/api/"},
		{"$${ is a literal ${", cfg.Cache.L2.KeyPrefix, "${app}:"},
		{"route line", cfg.Routes[1].Line, 8},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}
}

// TestParseEnvUnquotedInFlow: DESIGN.md's example writes ${...} unquoted
// inside {...}, whose braces would end the flow mapping; such a file
// loads, and a value full of YAML's own characters stays text.
func TestParseEnvUnquotedInFlow(t *testing.T) {
	src := `listen: 127.0.0.1:8080
admin: {listen: 127.0.0.1:9901, token: ${SHEEPDOG_ADMIN_TOKEN:-}}
upstream: {url: http://127.0.0.1:3001, timeout: 10s, max_conns: 512}
cache:
  l2: {addrs: [${VALKEY:-127.0.0.1:6379}], password: ${VALKEY_PASSWORD:-}, key_prefix: "sheepdog:"}
postgres: {dsn: ${DATABASE_URL:-}}
routes:
  - {name: all, match: {path_prefix: /api/}, pass: {}}
`
	env := map[string]string{"VALKEY_PASSWORD": "a, b}: #c ${X}"}
	cfg, err := ParseWithEnv("design.yaml", []byte(src), mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"admin.token", cfg.Admin.Token, ""},
		{"l2.addrs", strings.Join(cfg.Cache.L2.Addrs, ","), "127.0.0.1:6379"},
		{"l2.password", cfg.Cache.L2.Password, "a, b}: #c ${X}"},
		{"postgres.dsn", cfg.Postgres.DSN, ""},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

// TestParseEnvQuotedDefaults: a reference inside quotes is YAML's to read,
// so its default is unescaped as the quotes say, and a plain one beside it
// on the line is still set aside.
func TestParseEnvQuotedDefaults(t *testing.T) {
	src := "upstream: {url: http://127.0.0.1:3001}\n" +
		"cache: {l2: {password: \"${PW:-a\\\"b}\", key_prefix: '${KP:-it''s}', addrs: [${VALKEY:-127.0.0.1:6379}]}}\n" +
		"admin: {token: \"x\\\\\", listen: ${ADMIN:-127.0.0.1:9911}}\n" +
		"routes:\n  - {name: all, match: {path_prefix: /api/}, pass: {}}\n"
	cfg, err := ParseWithEnv("q.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"double-quoted default", cfg.Cache.L2.Password, `a"b`},
		{"single-quoted default", cfg.Cache.L2.KeyPrefix, "it's"},
		{"plain in the same flow mapping", strings.Join(cfg.Cache.L2.Addrs, ","), "127.0.0.1:6379"},
		{"plain after an escaped backslash", cfg.Admin.Listen, "127.0.0.1:9911"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestParseEnvErrorsCarryLineAndKey(t *testing.T) {
	src := "upstream: {url: http://127.0.0.1:3001}\nroutes:\n  - name: all\n    match: {path_prefix: \"${API_PREFIX}\"}\n    pass: {}\n"
	_, err := ParseWithEnv("f.yaml", []byte(src), noEnv)
	want := "f.yaml:4: routes[0](all).match.path_prefix: environment variable API_PREFIX is not set (give a default with ${API_PREFIX:-value})"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
