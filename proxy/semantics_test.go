package proxy

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
)

// These tests come from a review of Sheepdog's HTTP caching semantics
// against RFC 9110 and 9111; each failed before its fix.

// semanticsConfig: one cache route over /r in front of upstream.
func semanticsConfig(t *testing.T, upstream string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("semantics.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
routes:
  - {name: r, match: {path_prefix: /r}, cache: {ttl: 60s, stale_while_revalidate: 30s, stale_if_error: 1m}}
`, upstream)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// getWith is a raw GET of path with the given header lines.
func getWith(path string, lines ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n" + strings.Join(lines, "") + "\r\n"
}

// TestMissPassesTheAppsAge: a miss, and each waiter collapsed on it,
// passes on the app's Age (RFC 9111 §5.1): a browser that gets none keeps
// the answer for its whole max-age, 60 s instead of 10.
func TestMissPassesTheAppsAge(t *testing.T) {
	addr, _ := startRawOriginFunc(t, func(*fasthttp.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nAge: 50\r\nContent-Length: 2\r\n\r\nok", false
	})
	_, paddr, _ := startProxy(t, semanticsConfig(t, addr))
	for _, want := range []string{"MISS", "HIT"} {
		r := rawDo(t, paddr, getWith("/r/age"))
		age, _ := strconv.Atoi(string(r.Header.Peek("Age")))
		if x := string(r.Header.Peek("X-Cache")); x != want || age < 50 {
			t.Errorf("X-Cache %s, Age %q; want %s with an Age of at least 50", x, r.Header.Peek("Age"), want)
		}
		fasthttp.ReleaseResponse(r)
	}
}

// TestRefusingGzipIsNotNoPreference: a client that sent an Accept-Encoding
// refusing gzip (identity, gzip;q=0, or empty) never gets the variant of
// one that sent none, to whom the app may send gzip (RFC 9110 §12.5.3).
// Before, the refusal was deleted, and the two shared one variant.
func TestRefusingGzipIsNotNoPreference(t *testing.T) {
	addr, _ := startRawOriginFunc(t, func(req *fasthttp.Request) (string, bool) {
		ae := req.Header.Peek("Accept-Encoding")
		if ae == nil || strings.Contains(string(ae), "gzip") {
			return "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: Accept-Encoding\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\ngzzz", false
		}
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: Accept-Encoding\r\nContent-Length: 5\r\n\r\nplain", false
	})
	_, paddr, _ := startProxy(t, semanticsConfig(t, addr))
	fasthttp.ReleaseResponse(rawDo(t, paddr, getWith("/r/shared"))) // no Accept-Encoding: gzip stored
	for i, ae := range []string{"identity", "gzip;q=0", ""} {
		for _, path := range []string{"/r/shared", "/r/alone-" + strconv.Itoa(i)} {
			r := rawDo(t, paddr, getWith(path, "Accept-Encoding: "+ae+"\r\n"))
			if ce := r.Header.Peek("Content-Encoding"); len(ce) > 0 {
				t.Errorf("%s with Accept-Encoding %q: Content-Encoding %s (X-Cache %s)", path, ae, ce, r.Header.Peek("X-Cache"))
			}
			fasthttp.ReleaseResponse(r)
		}
	}
}

// TestNoCacheNotHandedToWaiters: an answer the app marked no-cache may not
// satisfy another request without validation (RFC 9111 §5.2.2.4), so a
// waiter collapsed on its fetch asks the app itself.
func TestNoCacheNotHandedToWaiters(t *testing.T) {
	var n atomic.Int64
	addr, asked := startRawOriginFunc(t, func(*fasthttp.Request) (string, bool) {
		time.Sleep(300 * time.Millisecond)
		body := "token-" + strconv.FormatInt(n.Add(1), 10)
		return "HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, false
	})
	_, paddr, _ := startProxy(t, semanticsConfig(t, addr))
	bodies := make(chan string, 2)
	for range 2 {
		go func() {
			r := rawDo(t, paddr, getWith("/r/nc"))
			bodies <- string(r.Body())
			fasthttp.ReleaseResponse(r)
		}()
		time.Sleep(50 * time.Millisecond)
	}
	if a, b := <-bodies, <-bodies; a == b {
		t.Errorf("two clients got the same no-cache answer %q; the app was asked %d times", a, asked.Load())
	}
}
