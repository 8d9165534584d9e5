package shepherd

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"regexp"
	"testing"
	"time"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEnvelope(t *testing.T) {
	app := New(Config{Now: fixedClock})
	const stamp = "2026-03-04T05:06:07.890Z"
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		want                     string // exact body; "" to check requestId only
		wantID                   string // exact requestId; "" for a fresh UUID
	}{
		{
			name: "object wrapped", method: "GET", path: "/", hdr: []string{"X-Request-Id", "req-1"},
			want:   `{"success":true,"data":{"name":"Style Shepherd API","version":"1.0.0","status":"running","endpoints":{"health":"/health","vultr":"/api/vultr","api":"/api"}},"requestId":"req-1","timestamp":"` + stamp + `"}`,
			wantID: "req-1",
		},
		{
			name: "flat error gets id and time", method: "GET", path: "/nowhere", hdr: []string{"X-Request-Id", "req-2"},
			want:   `{"error":"Route not found","requestId":"req-2","timestamp":"` + stamp + `"}`,
			wantID: "req-2",
		},
		{
			name: "flat success", method: "POST", path: vultr + "/valkey/session/e1/touch", hdr: []string{"X-Request-Id", "req-3"},
			want:   `{"success":true,"requestId":"req-3","timestamp":"` + stamp + `"}`,
			wantID: "req-3",
		},
		{
			// An order body that carries its own success key goes out flat.
			name: "echoed body with success key", method: "POST", path: vultr + "/postgres/orders",
			body:   `{"user_id":"user_3","items":[],"total_amount":"5","success":"yes","timestamp":"mine"}`,
			hdr:    []string{"X-Request-Id", "req-4"},
			wantID: "req-4",
		},
		{
			name: "repeated request ids are joined", method: "GET", path: "/nowhere",
			hdr:    []string{"X-Request-Id", "a", "X-Request-Id", "b"},
			wantID: "a, b",
		},
		{name: "no request id: a UUID", method: "GET", path: "/nowhere"},
		{name: "empty request id: a UUID", method: "GET", path: "/nowhere", hdr: []string{"X-Request-Id", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, app, tc.method, tc.path, tc.body, tc.hdr...)
			if tc.want != "" && string(resp.Body()) != tc.want {
				t.Fatalf("body\n got %s\nwant %s", resp.Body(), tc.want)
			}
			v := decode(t, resp)
			id, _ := v["requestId"].(string)
			switch {
			case tc.wantID != "" && id != tc.wantID:
				t.Errorf("requestId = %q, want %q", id, tc.wantID)
			case tc.wantID == "" && !uuidV4.MatchString(id):
				t.Errorf("requestId = %q, want a random UUID", id)
			}
			if tc.name == "echoed body with success key" {
				if _, wrapped := v["data"]; wrapped || v["success"] != "yes" || v["timestamp"] != "mine" || v["orderId"] == nil {
					t.Errorf("want the body flat with its own success and timestamp: %s", resp.Body())
				}
			}
		})
	}
	a := decode(t, call(t, app, "GET", "/nowhere", ""))["requestId"]
	b := decode(t, call(t, app, "GET", "/nowhere", ""))["requestId"]
	if a == b {
		t.Errorf("two requests without X-Request-Id got the same id %v", a)
	}
}

func TestSecurityHeaders(t *testing.T) {
	app := New(Config{})
	for _, path := range []string{vultr + "/postgres/products", "/nowhere", raindrop + "/memory-stats"} {
		resp := call(t, app, "GET", path, "")
		for _, kv := range helmetHeaders {
			if got := header(resp, kv[0]); got != kv[1] {
				t.Errorf("%s: %s = %q, want %q", path, kv[0], got, kv[1])
			}
		}
		if got := string(resp.Header.ContentType()); got != jsonType {
			t.Errorf("%s: Content-Type = %q", path, got)
		}
		if got := header(resp, "Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s: Access-Control-Allow-Origin = %q without an Origin", path, got)
		}
		if got := header(resp, "Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("%s: Access-Control-Allow-Credentials = %q", path, got)
		}
		if got := header(resp, "Vary"); got != "Origin, Accept-Encoding" {
			t.Errorf("%s: Vary = %q", path, got)
		}
	}
}

// decompress undoes a Content-Encoding.
func decompress(t *testing.T, encoding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	var err error
	switch encoding {
	case "":
		return b
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(b))
	case "deflate":
		r, err = zlib.NewReader(bytes.NewReader(b))
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompression checks the compression middleware's choices: over 1 KB
// and accepted, gzip (or deflate); otherwise the body as it is.
func TestCompression(t *testing.T) {
	s := serve(t, Config{Now: fixedClock})
	const big = vultr + "/postgres/products?limit=20" // ~14 KB
	const small = vultr + "/postgres/products?limit=0"
	id := []string{"X-Request-Id", "fixed"}
	plain := s.raw(t, rawRequest("GET", big, "", id...), false)
	if len(plain.Body()) < 2*compressThreshold || len(plain.Header.Peek("Content-Encoding")) != 0 {
		t.Fatalf("identity answer: %d bytes, encoding %q", len(plain.Body()), plain.Header.Peek("Content-Encoding"))
	}
	cases := []struct {
		name, path, accept, method string
		want                       string // Content-Encoding
	}{
		{"gzip", big, "gzip, deflate, br", "GET", "gzip"},
		{"deflate only", big, "deflate", "GET", "deflate"},
		{"deflate listed first", big, "deflate, gzip", "GET", "gzip"},
		{"wildcard", big, "*", "GET", "gzip"},
		{"gzip refused", big, "gzip;q=0, identity", "GET", ""},
		{"identity preferred", big, "identity;q=1, gzip;q=0.5", "GET", ""},
		{"no Accept-Encoding", big, "", "GET", ""},
		{"unknown coding", big, "br", "GET", ""},
		{"under 1 KB", small, "gzip", "GET", ""},
		{"HEAD", big, "gzip", "HEAD", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := append([]string{}, id...)
			if tc.accept != "" {
				hdr = append(hdr, "Accept-Encoding", tc.accept)
			}
			resp := s.raw(t, rawRequest(tc.method, tc.path, "", hdr...), tc.method == "HEAD")
			if got := header(resp, "Content-Encoding"); got != tc.want {
				t.Fatalf("Content-Encoding = %q, want %q", got, tc.want)
			}
			if got := header(resp, "Vary"); got != "Origin, Accept-Encoding" {
				t.Errorf("Vary = %q", got)
			}
			body := decompress(t, tc.want, resp.Body())
			switch {
			case tc.method == "HEAD":
				if len(body) != 0 || resp.Header.ContentLength() != len(plain.Body()) {
					t.Errorf("HEAD: body %d bytes, Content-Length %d, want 0 and %d", len(body), resp.Header.ContentLength(), len(plain.Body()))
				}
			case tc.path == big && !bytes.Equal(body, plain.Body()):
				t.Errorf("decoded body differs from the identity answer")
			case tc.path == small && len(body) >= compressThreshold:
				t.Errorf("small body is %d bytes", len(body))
			}
			if tc.want != "" && len(resp.Body()) >= len(plain.Body()) {
				t.Errorf("compressed %d bytes, identity %d", len(resp.Body()), len(plain.Body()))
			}
		})
	}
}

func TestETag(t *testing.T) {
	app := New(Config{Now: fixedClock})
	const path = vultr + "/postgres/users/user_2/profile"
	first := call(t, app, "GET", path, "", "X-Request-Id", "same")
	etag := header(first, "ETag")
	if !regexp.MustCompile(`^W/"[0-9a-f]+-[A-Za-z0-9+/]{27}"$`).MatchString(etag) {
		t.Fatalf("ETag = %q, not Express's weak form", etag)
	}
	if string(weakETag(nil)) != `W/"0-2jmj7l5rSw0yVb/vlWAYkK/YBwk"` {
		t.Errorf("ETag of nothing = %s, want Express's", weakETag(nil))
	}
	cases := []struct {
		name, method, id string
		hdr              []string
		want             int
	}{
		{"matching validator", "GET", "same", []string{"If-None-Match", etag}, 304},
		{"strong form of the same tag", "GET", "same", []string{"If-None-Match", etag[2:]}, 304},
		{"in a list", "GET", "same", []string{"If-None-Match", `"x", ` + etag}, 304},
		{"star", "GET", "same", []string{"If-None-Match", "*"}, 304},
		{"no-cache overrides", "GET", "same", []string{"If-None-Match", etag, "Cache-Control", "no-cache"}, 200},
		{"other request id, other bytes", "GET", "other", []string{"If-None-Match", etag}, 200},
		{"If-Modified-Since alone", "GET", "same", []string{"If-Modified-Since", "Wed, 01 Jan 2031 00:00:00 GMT"}, 200},
		{"not on a write", "POST", "same", []string{"If-None-Match", "*"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, app, tc.method, path, "", append([]string{"X-Request-Id", tc.id}, tc.hdr...)...)
			if resp.StatusCode() != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode(), tc.want)
			}
			if tc.want == 304 {
				if len(resp.Body()) != 0 {
					t.Errorf("304 with a body")
				}
				if got := header(resp, "Vary"); got != "Origin" {
					t.Errorf("304 Vary = %q, want Origin", got)
				}
			}
		})
	}
}

func TestNegotiateEncoding(t *testing.T) {
	cases := map[string]string{
		"":                           "",
		"gzip":                       "gzip",
		"GZIP":                       "gzip",
		"deflate":                    "deflate",
		"br":                         "",
		"*":                          "gzip",
		"*;q=0":                      "",
		"identity":                   "",
		"gzip;q=0":                   "",
		"*, gzip;q=0":                "deflate",
		"deflate, gzip":              "gzip",
		"deflate;q=1, gzip;q=0.1":    "gzip",
		"gzip;q=0.1, identity;q=0.5": "",
		"gzip;q=0.5":                 "gzip",
		" gzip ; q=0.8 , br":         "gzip",
		",,":                         "",
	}
	for header, want := range cases {
		t.Run(header, func(t *testing.T) {
			if got := negotiateEncoding([]byte(header)); got != want {
				t.Errorf("negotiateEncoding(%q) = %q, want %q", header, got, want)
			}
		})
	}
}

func TestTimestampFollowsClock(t *testing.T) {
	now := time.Date(2030, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("X", 5*3600))
	app := New(Config{Now: func() time.Time { return now }})
	v := decode(t, call(t, app, "GET", "/", ""))
	if v["timestamp"] != "2030-12-31T18:59:59.999Z" {
		t.Errorf("timestamp = %v, want the clock in UTC with milliseconds", v["timestamp"])
	}
}
