package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/coalesce"
	"github.com/style-shepherd/sheepdog/configs"
)

func testClient(t *testing.T, addr string, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(configs.Upstream{URL: "http://" + addr, Timeout: timeout, MaxConns: 4, HealthPath: "/"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rawItems(texts ...string) []json.RawMessage {
	items := make([]json.RawMessage, len(texts))
	for i, s := range texts {
		items[i] = json.RawMessage(s)
	}
	return items
}

// TestHTTPSinkStoresMemories: one batch to the simulated app's
// batch-store-memory is one call, gives each item its own id, and the
// memories are then found by search-memory.
func TestHTTPSinkStoresMemories(t *testing.T) {
	app := shepherd.New(shepherd.Config{})
	addr, err := app.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	client := testClient(t, addr, 5*time.Second)
	sink := NewHTTPSink(client, "/api/raindrop/batch-store-memory", "memories", "results")

	texts := []string{"linen shirt for summer", "wool coat, size M", "silk scarf"}
	var items []json.RawMessage
	for _, text := range texts {
		items = append(items, json.RawMessage(fmt.Sprintf(`{"userId":"sink_user","type":"preference","text":%q}`, text)))
	}
	results, err := sink.Flush(context.Background(), items)
	if err != nil {
		t.Fatalf("Flush: %v", err)
	}
	ids := make(map[string]string) // id → text
	for i, r := range results {
		var elem struct {
			Success bool   `json:"success"`
			ID      string `json:"id"`
		}
		if err := json.Unmarshal(r.Body, &elem); err != nil || r.Status != 200 || !elem.Success || elem.ID == "" {
			t.Fatalf("result %d: status %d body %s (%v)", i, r.Status, r.Body, err)
		}
		ids[elem.ID] = texts[i]
	}
	if len(ids) != len(texts) {
		t.Fatalf("%d distinct ids for %d items", len(ids), len(texts))
	}
	if n := app.Stats().Routes["memory.batch"]; n != 1 {
		t.Errorf("the app served %d batch calls, want 1", n)
	}

	// What the app now finds for the user is what was stored.
	found := searchMemory(t, client, addr, `{"userId":"sink_user","topK":10}`)
	if len(found) != len(ids) {
		t.Fatalf("search found %d memories, want %d: %v", len(found), len(ids), found)
	}
	for id, text := range found {
		if ids[id] != text {
			t.Errorf("memory %s: text %q, stored %q", id, text, ids[id])
		}
	}

	// A batch the app refuses as a whole (an empty text) is its 400,
	// for the batcher to split; it is not retried.
	_, err = sink.Flush(context.Background(), rawItems(`{"text":"fine"}`, `{"text":""}`))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 400 || !strings.Contains(string(se.Body), "VALIDATION_ERROR") {
		t.Fatalf("a batch with an empty text: %v, want the app's 400", err)
	}
	if n := app.Stats().Routes["memory.batch"]; n != 2 {
		t.Errorf("the app served %d batch calls after a refused one, want 2", n)
	}
}

// searchMemory returns the text of each memory search-memory answers, by id.
func searchMemory(t *testing.T, c *Client, addr, body string) map[string]string {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod("POST")
	req.SetRequestURI("/api/raindrop/search-memory")
	req.Header.SetHost(addr)
	req.Header.SetContentType("application/json")
	req.SetBodyString(body)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("search-memory: %v, status %d", err, resp.StatusCode())
	}
	var answer struct {
		Results []struct{ ID, Text string }
	}
	if err := json.Unmarshal(resp.Body(), &answer); err != nil {
		t.Fatalf("search-memory answer %s: %v", resp.Body(), err)
	}
	found := make(map[string]string)
	for _, r := range answer.Results {
		found[r.ID] = r.Text
	}
	return found
}

// batchOrigin is a batch endpoint whose answers come from answer, called
// with the request's number (1, 2, ...). It records what it received.
type batchOrigin struct {
	requests atomic.Int64
	mu       sync.Mutex // protects got
	got      []string   // "METHOD path content-type body" per request
}

// seen returns what the origin received, one line per request.
func (o *batchOrigin) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

func startBatchOrigin(t *testing.T, answer func(n int64) (int, string)) (string, *batchOrigin) {
	t.Helper()
	o := &batchOrigin{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		n := o.requests.Add(1)
		o.mu.Lock()
		o.got = append(o.got, fmt.Sprintf("%s %s %s %s", ctx.Method(), ctx.Path(), ctx.Request.Header.ContentType(), ctx.PostBody()))
		o.mu.Unlock()
		status, body := answer(n)
		ctx.SetStatusCode(status)
		ctx.SetBodyString(body)
	}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) //nolint:errcheck // ends at Shutdown
	}()
	t.Cleanup(func() {
		// fasthttp's Shutdown closes only a listener its Serve has taken:
		// a test that sends nothing can end before Serve starts.
		srv.Shutdown()
		ln.Close()
		<-done
	})
	return ln.Addr().String(), o
}

func TestHTTPSinkAnswers(t *testing.T) {
	const ok2 = `{"success":true,"results":[{"success":true,"id":"a"},{"id":"b"}]}`
	big := strings.Repeat("x", 40<<10) // two make an answer that is streamed
	tests := []struct {
		name       string
		answer     func(n int64) (int, string)
		wantReqs   int64
		wantStatus []int  // per item, when the batch succeeds
		wantErr    string // in the batch error otherwise
		wantCode   int    // a *StatusError's status, if the error is one
		unreadable bool   // the error is ErrAnswerUnreadable: 2xx, but not split
	}{
		{name: "per-item success", answer: func(int64) (int, string) { return 200, ok2 },
			wantReqs: 1, wantStatus: []int{200, 200}},
		{name: "per-item failure is 422", wantReqs: 1, wantStatus: []int{422, 200},
			answer: func(int64) (int, string) {
				return 200, `{"results":[{"success":false,"error":"no"},{"success":true}]}`
			}},
		{name: "5xx then success is retried once", wantReqs: 2, wantStatus: []int{200, 200},
			answer: func(n int64) (int, string) {
				if n == 1 {
					return 503, `{"error":"busy"}`
				}
				return 200, ok2
			}},
		{name: "5xx twice fails the batch", answer: func(int64) (int, string) { return 502, "bad gateway" },
			wantReqs: 2, wantErr: "answered 502", wantCode: 502},
		{name: "4xx is not retried", answer: func(int64) (int, string) { return 400, `{"error":"x"}` },
			wantReqs: 1, wantErr: "answered 400", wantCode: 400},
		{name: "one element short", answer: func(int64) (int, string) { return 200, `{"results":[{"id":"a"}]}` },
			wantReqs: 1, wantErr: `want "results" with 2 elements`, unreadable: true},
		{name: "no split array", answer: func(int64) (int, string) { return 200, `{"success":true}` },
			wantReqs: 1, wantErr: `want "results" with 2 elements`, unreadable: true},
		{name: "answer not JSON", answer: func(int64) (int, string) { return 200, `<html>` },
			wantReqs: 1, wantErr: "answer", unreadable: true},
		{name: "long answer read from its stream", wantReqs: 1, wantStatus: []int{200, 200},
			answer: func(int64) (int, string) {
				return 200, `{"results":[{"pad":"` + big + `"},{"pad":"` + big + `"}]}`
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, origin := startBatchOrigin(t, tt.answer)
			sink := NewHTTPSink(testClient(t, addr, 5*time.Second), "/batch", "memories", "results")
			results, err := sink.Flush(context.Background(), rawItems(`{"text":"a"}`, ` "b" `))
			if got := origin.requests.Load(); got != tt.wantReqs {
				t.Errorf("%d requests, want %d", got, tt.wantReqs)
			}
			want := `POST /batch application/json {"memories":[{"text":"a"}, "b" ]}`
			for i, got := range origin.seen() {
				if got != want {
					t.Errorf("request %d: %.120s, want %s", i+1, got, want)
				}
			}
			if tt.wantErr != "" {
				var se *StatusError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.As(err, &se) != (tt.wantCode != 0) ||
					(se != nil && se.Status != tt.wantCode) || errors.Is(err, ErrAnswerUnreadable) != tt.unreadable {
					t.Fatalf("error %v, want one saying %q (status %d)", err, tt.wantErr, tt.wantCode)
				}
				return
			}
			if err != nil || len(results) != len(tt.wantStatus) {
				t.Fatalf("Flush = %d results, %v; want %d", len(results), err, len(tt.wantStatus))
			}
			for i, r := range results {
				if r.Status != tt.wantStatus[i] || !json.Valid(r.Body) {
					t.Errorf("result %d: status %d body %.60s, want status %d", i, r.Status, r.Body, tt.wantStatus[i])
				}
			}
		})
	}
}

// deafOrigin accepts connections and reads them; with hangUp it closes
// each at once (after reading the request and writing reply, if reply is
// set), otherwise it never answers. It counts connections.
func deafOrigin(t *testing.T, hangUp bool, reply string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := new(atomic.Int64)
	var wg sync.WaitGroup
	var mu sync.Mutex // protects conns
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			if hangUp {
				if reply != "" {
					conn.SetDeadline(time.Now().Add(time.Second))
					conn.Read(make([]byte, 4096)) // the request, sent in one write
					io.WriteString(conn, reply)
				}
				conn.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// TestHTTPSinkConnectionFailures: neither a connection closed before any
// answer (the app read the whole batch, and may have stored it) nor a
// timeout (the whole upstream timeout is spent) is retried.
func TestHTTPSinkConnectionFailures(t *testing.T) {
	tests := []struct {
		name     string
		hangUp   bool
		wantKind Kind
		wantTry  int64
	}{
		{"closed before an answer", true, Unreachable, 1},
		{"no answer in time", false, Timeout, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, accepted := deafOrigin(t, tt.hangUp, "")
			sink := NewHTTPSink(testClient(t, addr, 200*time.Millisecond), "/batch", "", "")
			_, err := sink.Flush(context.Background(), rawItems(`1`))
			var ue *Error
			if !errors.As(err, &ue) || ue.Kind != tt.wantKind {
				t.Fatalf("Flush: %v, want an *Error of kind %d", err, tt.wantKind)
			}
			if got := accepted.Load(); got != tt.wantTry {
				t.Errorf("%d connections, want %d", got, tt.wantTry)
			}
		})
	}
}

// TestHTTPSinkAnswerCut: an answer that began to arrive but cannot be
// read whole is not retried, as the app may have taken the batch; the
// batch fails with ErrAnswerUnreadable, or a plain *Error when even the
// status line was cut, never to be split.
func TestHTTPSinkAnswerCut(t *testing.T) {
	tests := []struct {
		name       string
		reply      string
		unreadable bool // ErrAnswerUnreadable; else an *Error
	}{
		{"cut in the status line", "HTTP/1.1 200", false},
		{"cut after the headers", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"results\":[", true},
		{"cut in a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{\"results\"", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, accepted := deafOrigin(t, true, tt.reply)
			sink := NewHTTPSink(testClient(t, addr, time.Second), "/batch", "", "")
			_, err := sink.Flush(context.Background(), rawItems(`1`))
			var ue *Error
			if errors.Is(err, ErrAnswerUnreadable) != tt.unreadable || (!tt.unreadable && !errors.As(err, &ue)) {
				t.Errorf("Flush: %v, want unreadable %v", err, tt.unreadable)
			}
			if got := accepted.Load(); got != 1 {
				t.Errorf("%d connections, want 1: the batch was sent again", got)
			}
		})
	}
	t.Run("answer over the limit", func(t *testing.T) {
		huge := `{"results":["` + strings.Repeat("x", maxBatchAnswer) + `"]}`
		addr, origin := startBatchOrigin(t, func(int64) (int, string) { return 200, huge })
		sink := NewHTTPSink(testClient(t, addr, 5*time.Second), "/batch", "", "")
		_, err := sink.Flush(context.Background(), rawItems(`1`))
		if !errors.Is(err, ErrAnswerUnreadable) {
			t.Errorf("Flush: %v, want ErrAnswerUnreadable", err)
		}
		if n := origin.requests.Load(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

func TestHTTPSinkSendsNothing(t *testing.T) {
	addr, origin := startBatchOrigin(t, func(int64) (int, string) { return 200, `{"results":[]}` })
	sink := NewHTTPSink(testClient(t, addr, time.Second), "/batch", "items", "results")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		items   []json.RawMessage
		wantErr string
	}{
		{"empty batch", context.Background(), nil, ""},
		{"an item that is not JSON", context.Background(), rawItems(`{"a":1}`, `{oops`), "item 1 is not JSON"},
		{"an empty item", context.Background(), rawItems(``), "item 0 is not JSON"},
		{"cancelled context", cancelled, rawItems(`1`), "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results, err := sink.Flush(tt.ctx, tt.items)
			if tt.wantErr == "" && (err != nil || len(results) != 0) {
				t.Fatalf("Flush = %v, %v; want no results and no error", results, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Flush error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
	if n := origin.requests.Load(); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestHTTPSinkString(t *testing.T) {
	sink := NewHTTPSink(testClient(t, "127.0.0.1:3001", time.Second), "/api/raindrop/batch-store-memory", "memories", "results")
	if got := sink.String(); got != "http 127.0.0.1:3001/api/raindrop/batch-store-memory" {
		t.Errorf("String() = %q", got)
	}
}

// TestHTTPSinkCloseDeadlineAborts: a batch in flight to an endpoint that
// does not answer is given up when Close's deadline (shutdown_grace)
// passes: Close returns soon after it, not a whole upstream timeout later,
// and the caller is told its write failed, not that it timed out upstream.
func TestHTTPSinkCloseDeadlineAborts(t *testing.T) {
	addr, accepted := deafOrigin(t, false, "")
	const upstreamTimeout = 3 * time.Second
	sink := NewHTTPSink(testClient(t, addr, upstreamTimeout), "/batch", "", "")
	b, err := coalesce.NewBatcher(coalesce.BatcherConfig{Timeout: upstreamTimeout},
		func(it json.RawMessage) int { return len(it) }, sink.Flush)
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		err error
		at  time.Time
	}
	got := make(chan answer, 1)
	go func() {
		_, err := b.Submit(context.Background(), json.RawMessage(`{"text":"a"}`))
		got <- answer{err, time.Now()}
	}()
	for deadline := time.Now().Add(2 * time.Second); accepted.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the batch never reached the endpoint")
		}
	}

	const grace = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err = b.Close(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want its deadline's error", err)
	}
	if took > grace+500*time.Millisecond {
		t.Errorf("Close took %v with a grace of %v: the call in flight was not aborted", took.Round(time.Millisecond), grace)
	}
	a := <-got
	if a.err == nil {
		t.Fatal("Submit succeeded against an endpoint that never answered")
	}
	if d := a.at.Sub(start); d > grace+500*time.Millisecond {
		t.Errorf("the caller was answered %v after Close began (grace %v): %v", d.Round(time.Millisecond), grace, a.err)
	}
	var ue *Error
	if errors.As(a.err, &ue) && ue.Kind == Timeout {
		t.Errorf("the caller got the upstream timeout (%v), not the shutdown's cancellation", a.err)
	}
}
