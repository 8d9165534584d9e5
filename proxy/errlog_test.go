package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/configs"
)

// syncBuffer is a bytes.Buffer a logger and a test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// servedWithLogs serves cfg on free ports, its JSON log in logs, until
// the test ends.
func servedWithLogs(t *testing.T, cfg *configs.Config) (addr string, logs *syncBuffer) {
	t.Helper()
	logs = new(syncBuffer)
	p, err := New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, adminLn := listen(t), listen(t)
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln, adminLn) }()
	t.Cleanup(func() { stopProxy(t, p, done) })
	return ln.Addr().String(), logs
}

// TestErrorsLoggedOnce: an app that is down fails every request alike;
// the log has one JSON line for it, with the cause the client is not
// shown, however many requests failed. A client's 4xx is not logged. A
// malformed request from every port is one line too.
func TestErrorsLoggedOnce(t *testing.T) {
	down := listen(t)
	downAddr := down.Addr().String()
	down.Close() // nothing listens there now
	addr, logs := servedWithLogs(t, testConfig(t, downAddr, ""))
	c := rawClient(addr)
	for range 5 {
		resp := get(t, c, "GET", "/api/vultr/health")
		if resp.StatusCode() != 502 {
			t.Fatalf("app down: %d", resp.StatusCode())
		}
		fasthttp.ReleaseResponse(resp)
	}
	fasthttp.ReleaseResponse(get(t, c, "GET", "/no/route/here")) // 404: the client's
	for range 3 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("GARBAGE\r\n\r\n"))
		conn.Read(make([]byte, 512))
		conn.Close()
	}
	var answered, library int
	for _, l := range logs.lines() {
		switch {
		case l["msg"] == "answered with an error":
			answered++
			if l["code"] != codeUpstreamUnreachable || !strings.Contains(l["cause"].(string), "connection refused") || l["level"] != "ERROR" {
				t.Errorf("the outage's line: %v", l)
			}
		case l["component"] == "fasthttp":
			library++
		}
	}
	if answered != 1 || library != 1 {
		t.Errorf("%d lines for 5 failures alike and %d for 3 malformed requests, want 1 and 1:\n%v", answered, library, logs.lines())
	}
}

// TestResetOutageLoggedOnce: an app that resets its connections fails
// each request with an error naming its own local port; they are one
// error, and one line (from a review's test).
func TestResetOutageLoggedOnce(t *testing.T) {
	app := listen(t)
	go func() {
		for {
			c, err := app.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				for {
					if l, err := br.ReadString('\n'); err != nil || l == "\r\n" {
						break
					}
				}
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"))
				time.Sleep(20 * time.Millisecond)
				c.(*net.TCPConn).SetLinger(0)
				c.Close() // a reset
			}()
		}
	}()
	addr, logs := servedWithLogs(t, testConfig(t, app.Addr().String(), ""))
	c := rawClient(addr)
	for range 5 {
		resp := get(t, c, "POST", "/api/x", "body", "{}")
		if resp.StatusCode() < 500 {
			t.Fatalf("status %d", resp.StatusCode())
		}
		fasthttp.ReleaseResponse(resp)
	}
	var causes []string
	for _, l := range logs.lines() {
		if l["msg"] == "answered with an error" {
			causes = append(causes, l["cause"].(string))
		}
	}
	if len(causes) != 1 {
		t.Errorf("%d lines for 5 failures alike, want 1:\n%s", len(causes), strings.Join(causes, "\n"))
	}
}
