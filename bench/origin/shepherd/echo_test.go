package shepherd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestEchoDescribesTheRequest(t *testing.T) {
	s := serve(t, Config{})
	binary := string(EchoBytes(1024)) // every byte value, CR, LF and NUL included
	cases := []struct {
		name, method, uri, body string
		hdr                     []string
	}{
		{"plain GET", "GET", "/__origin/echo", "", nil},
		{"query kept raw", "GET", "/__origin/echo?z=1&a=%41%2f+x&&q=caf%C3%A9&flag", "", nil},
		{"odd but legal characters", "GET", "/__origin/echo?path=/../a/./b&semi=a;b&tilde=%7e~", "", nil},
		{"POST binary body", "POST", "/__origin/echo?x=1", binary, []string{"Content-Type", "application/octet-stream"}},
		{"DELETE", "DELETE", "/__origin/echo", "", nil},
		{"PATCH with body", "PATCH", "/__origin/echo", `{"a":1}`, []string{"Content-Type", "application/json"}},
		{"multi-valued test headers", "GET", "/__origin/echo", "", []string{
			"X-Test-A", "1", "X-Test-A", "2, 3", "x-test-b", "lower", "X-Other", "not reflected", "X-Test-A", "4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.app.Stats().Routes[routeEcho]
			resp := s.raw(t, rawRequest(tc.method, tc.uri, tc.body, tc.hdr...), false)
			if resp.StatusCode() != 200 {
				t.Fatalf("status %d", resp.StatusCode())
			}
			want := map[string]string{
				"X-Echo-Method":      tc.method,
				"X-Echo-Uri":         tc.uri,
				"X-Echo-Body-Len":    strconv.Itoa(len(tc.body)),
				"X-Echo-Body-Sha256": sha([]byte(tc.body)),
			}
			for k, v := range want {
				if got := string(resp.Header.Peek(k)); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if !bytes.Equal(resp.Body(), []byte(tc.body)) {
				t.Errorf("body: %d bytes back for %d sent", len(resp.Body()), len(tc.body))
			}
			if got := s.app.Stats().Routes[routeEcho]; got != before+1 {
				t.Errorf("echo counted %d -> %d", before, got)
			}
			if len(resp.Header.Peek("X-Frame-Options")) != 0 {
				t.Errorf("echo carries the app's headers")
			}
			if tc.name == "multi-valued test headers" {
				var a []string
				for _, v := range resp.Header.PeekAll("X-Test-A") {
					a = append(a, string(v))
				}
				if strings.Join(a, "|") != "1|2, 3|4" {
					t.Errorf("X-Test-A values = %q, want 1 | 2, 3 | 4", a)
				}
				if got := string(resp.Header.Peek("X-Test-B")); got != "lower" {
					t.Errorf("X-Test-B = %q", got)
				}
				if len(resp.Header.Peek("X-Other")) != 0 {
					t.Errorf("X-Other reflected")
				}
			}
		})
	}
}

func TestEchoAnswers(t *testing.T) {
	s := serve(t, Config{})
	cases := []struct {
		name, method, uri string
		status            int
		check             func(t *testing.T, body []byte, hdr func(string) string, raw string)
	}{
		{"generated body", "GET", "/__origin/echo?size=300000", 200, func(t *testing.T, body []byte, hdr func(string) string, _ string) {
			if !bytes.Equal(body, EchoBytes(300000)) {
				t.Errorf("size=300000 body differs from EchoBytes")
			}
			if hdr("Content-Type") != "application/octet-stream" {
				t.Errorf("Content-Type = %q", hdr("Content-Type"))
			}
		}},
		{"HEAD", "HEAD", "/__origin/echo?size=1000", 200, func(t *testing.T, body []byte, hdr func(string) string, _ string) {
			if len(body) != 0 || hdr("Content-Length") != "1000" || hdr("X-Echo-Method") != "HEAD" {
				t.Errorf("HEAD: %d body bytes, Content-Length %q", len(body), hdr("Content-Length"))
			}
		}},
		{"status", "GET", "/__origin/echo?status=503", 503, nil},
		{"no content", "GET", "/__origin/echo?status=204&size=10", 204, func(t *testing.T, body []byte, _ func(string) string, _ string) {
			if len(body) != 0 {
				t.Errorf("204 with %d body bytes", len(body))
			}
		}},
		{"redirect", "GET", "/__origin/echo?status=302", 302, func(t *testing.T, _ []byte, hdr func(string) string, _ string) {
			if hdr("Location") != "/__origin/echo" {
				t.Errorf("Location = %q", hdr("Location"))
			}
		}},
		{"redirect elsewhere", "GET", "/__origin/echo?status=301&location=/api/x", 301, func(t *testing.T, _ []byte, hdr func(string) string, _ string) {
			if hdr("Location") != "/api/x" {
				t.Errorf("Location = %q", hdr("Location"))
			}
		}},
		{"cookies", "GET", "/__origin/echo?cookies=1", 200, func(t *testing.T, _ []byte, _ func(string) string, raw string) {
			if n := strings.Count(strings.ToLower(raw), "\r\nset-cookie: "); n != 2 {
				t.Errorf("%d Set-Cookie headers, want 2:\n%s", n, raw)
			}
		}},
		{"bad status", "GET", "/__origin/echo?status=42", 400, nil},
		{"bad size", "GET", "/__origin/echo?size=-1", 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.raw(t, rawRequest(tc.method, tc.uri, ""), tc.method == "HEAD")
			if resp.StatusCode() != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode(), tc.status)
			}
			if tc.check != nil {
				hdr := func(k string) string { return string(resp.Header.Peek(k)) }
				tc.check(t, resp.Body(), hdr, string(resp.Header.Header()))
			}
		})
	}
}

// TestEchoFiveMegabytes sends and receives 5 MB bodies, both directions
// at once and each alone.
func TestEchoFiveMegabytes(t *testing.T) {
	s := serve(t, Config{})
	const n = 5 << 20
	up := bytes.Repeat([]byte("sheepdog\x00\xff\r\n"), n/12+1)[:n]
	resp := s.raw(t, rawRequest("PUT", "/__origin/echo", string(up)), false)
	if !bytes.Equal(resp.Body(), up) || string(resp.Header.Peek("X-Echo-Body-Sha256")) != sha(up) {
		t.Errorf("5 MB up and back: %d bytes, sha %s", len(resp.Body()), resp.Header.Peek("X-Echo-Body-Sha256"))
	}
	resp = s.raw(t, rawRequest("POST", "/__origin/echo?size="+strconv.Itoa(n), "x"), false)
	if !bytes.Equal(resp.Body(), EchoBytes(n)) || string(resp.Header.Peek("X-Echo-Body-Len")) != "1" {
		t.Errorf("5 MB generated: %d bytes", len(resp.Body()))
	}
}

func TestEchoBytes(t *testing.T) {
	const n = 8 << 20
	b := EchoBytes(n)
	runs := make(map[[2]byte]bool)
	for off := 0; off < n; off += 256 {
		var seen [256]bool
		for _, c := range b[off : off+256] {
			seen[c] = true
		}
		for v, ok := range seen {
			if !ok {
				t.Fatalf("run at %d lacks byte %d", off, v)
			}
		}
		// A run is fixed by its first two bytes (c and m+c).
		key := [2]byte{b[off], b[off+1]}
		if runs[key] {
			t.Fatalf("run at %d repeats an earlier run", off)
		}
		runs[key] = true
	}
	if !bytes.Equal(EchoBytes(1000), b[:1000]) {
		t.Errorf("EchoBytes is not a prefix-stable sequence")
	}
}

// TestEchoSetsHeaders: X-Echo-Set-Name asks the echo for a response
// header, and a received X-Forwarded-Host is repeated back.
func TestEchoSetsHeaders(t *testing.T) {
	app := New(Config{})
	resp := call(t, app, "GET", "/__origin/echo", "",
		"X-Echo-Set-Cache-Control", "private", "X-Echo-Set-Vary", "*", "X-Forwarded-Host", "evil.example")
	for name, want := range map[string]string{"Cache-Control": "private", "Vary": "*", "X-Echo-Forwarded-Host": "evil.example"} {
		if got := string(resp.Header.Peek(name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}
