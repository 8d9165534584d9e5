package load

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serve runs handler on a fresh 127.0.0.1 port until the test ends.
func serve(t *testing.T, handler fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	})
	return "http://" + ln.Addr().String()
}

// runGoroutines counts the goroutines a run owns or leaves behind: its own,
// and fasthttp's idle-connection cleaner.
func runGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, mark := range []string{"load.(*run)", "load.(*connSet)", "load.(*client)", "load.Run(", "(*HostClient).connsCleaner"} {
			if strings.Contains(g, mark) {
				n++
				break
			}
		}
	}
	return n
}

// expectNoRunGoroutines fails unless every run goroutine is gone within 2s.
func expectNoRunGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runGoroutines() > 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines left behind:\n%s", buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get is a Source of GETs for one path.
func get(path, kind string) Source {
	return SourceFunc(func(_ *rand.Rand, req *fasthttp.Request) string {
		req.SetRequestURI(path)
		return kind
	})
}

func TestClosedLoopSendsExactlyTheRequestedCount(t *testing.T) {
	const requests, keys = 600, 100
	var mu sync.Mutex
	seen := map[string]int{} // "GET 2xx", "POST 4xx", ...
	target := serve(t, func(ctx *fasthttp.RequestCtx) {
		// Keys 0..49 exist; the rest are 404, so status classes are checked too.
		k, _ := strconv.Atoi(strings.TrimPrefix(string(ctx.Path()), "/items/"))
		status := fasthttp.StatusOK
		if k >= keys/2 {
			status = fasthttp.StatusNotFound
		}
		ctx.SetStatusCode(status)
		mu.Lock()
		seen[string(ctx.Method())+" "+strconv.Itoa(status/100)+"xx"]++
		mu.Unlock()
	})
	zipf, err := NewZipf(keys, 1)
	if err != nil {
		t.Fatal(err)
	}
	reads := SourceFunc(func(r *rand.Rand, req *fasthttp.Request) string {
		req.SetRequestURI("/items/" + strconv.Itoa(zipf.Next(r)))
		return "read"
	})
	writes := SourceFunc(func(r *rand.Rand, req *fasthttp.Request) string {
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/items/" + strconv.Itoa(r.IntN(keys)))
		req.SetBodyString(`{"v":1}`)
		return "write"
	})
	mix, err := NewMix(Weighted{3, reads}, Weighted{1, writes})
	if err != nil {
		t.Fatal(err)
	}

	res, err := Run(context.Background(), Config{
		Target: target, Source: mix, Requests: requests, Duration: 20 * time.Second, Clients: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	expectNoRunGoroutines(t)

	mu.Lock()
	defer mu.Unlock()
	served := 0
	for _, n := range seen {
		served += n
	}
	if served != requests || res.Sent != requests || res.Answered != requests {
		t.Fatalf("server saw %d, Sent %d, Answered %d; want %d each", served, res.Sent, res.Answered, requests)
	}
	if res.Errors.Total() != 0 || res.Dropped != 0 || res.Canceled != 0 {
		t.Errorf("errors %v, dropped %d, canceled %d; want none", res.Errors, res.Dropped, res.Canceled)
	}
	if got := res.Latency.Count; got != requests {
		t.Errorf("latency samples %d, want %d", got, requests)
	}
	if res.Mode != ModeClosed || res.Clients != 8 {
		t.Errorf("mode %q clients %d", res.Mode, res.Clients)
	}
	byKind := map[string]KindResult{}
	for _, k := range res.Kinds {
		byKind[k.Kind] = k
	}
	tests := []struct {
		kind, method string
	}{{"read", "GET"}, {"write", "POST"}}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			k := byKind[tt.kind]
			if got, want := k.Status[2], uint64(seen[tt.method+" 2xx"]); got != want {
				t.Errorf("2xx: %d, server answered %d", got, want)
			}
			if got, want := k.Status[4], uint64(seen[tt.method+" 4xx"]); got != want {
				t.Errorf("4xx: %d, server answered %d", got, want)
			}
			if k.Answered == 0 || k.Latency.Count != k.Answered {
				t.Errorf("answered %d with %d latency samples", k.Answered, k.Latency.Count)
			}
		})
	}
	if r, w := byKind["read"].Answered, byKind["write"].Answered; r < 2*w {
		t.Errorf("reads %d, writes %d: want about 3 reads per write", r, w)
	}
	var inSeries uint64
	for _, s := range res.Series {
		inSeries += s.Answered
	}
	if inSeries != requests {
		t.Errorf("series adds up to %d answers, want %d", inSeries, requests)
	}
}

func TestClosedLoopStopsAtDuration(t *testing.T) {
	target := serve(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(10 * time.Millisecond) })
	begin := time.Now()
	res, err := Run(context.Background(), Config{
		Target: target, Source: get("/", ""), Requests: 1 << 30, Duration: 300 * time.Millisecond, Clients: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("a 300ms run took %v", took)
	}
	// Two clients at 10ms each: about 60 answers in 300ms, never thousands.
	if res.Answered < 10 || res.Answered > 80 {
		t.Errorf("answered %d in 300ms with 2 clients of 10ms each", res.Answered)
	}
	if len(res.Kinds) != 1 || res.Kinds[0].Kind != "request" {
		t.Errorf("kinds %+v, want one named request", res.Kinds)
	}
}

func TestOpenLoopShowsQueueingBeyondCapacity(t *testing.T) {
	// One worker at 5ms a request sustains 200/s. At 400/s the waiting line
	// grows until arrivals are dropped, and each answered request waits for
	// the ~16 ahead of it (8 at the server, 8 waiting for a client): about
	// 80ms. Latency counted from the send time, as closed-loop tools count
	// it, would see only the server's own queue of 8, about 45ms: the
	// threshold of 65ms tells the two apart. The checks read the median:
	// half capacity over 1.5 s is 150 requests, whose p99 is one of the
	// two slowest, which one scheduler stall on a loaded machine decides.
	const service = 5 * time.Millisecond
	var worker sync.Mutex
	target := serve(t, func(ctx *fasthttp.RequestCtx) {
		worker.Lock()
		defer worker.Unlock()
		time.Sleep(service)
	})
	tests := []struct {
		name     string
		rate     float64
		checkP50 func(time.Duration) bool
		want     string
		dropped  bool
	}{
		{"half capacity", 100, func(p50 time.Duration) bool { return p50 < 8*service }, "< 40ms", false},
		{"twice capacity", 400, func(p50 time.Duration) bool { return p50 > 13*service }, "> 65ms", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(context.Background(), Config{
				Target: target, Source: get("/slow", "read"), Rate: tt.rate,
				Requests: 10000, Duration: 1500 * time.Millisecond, Clients: 8,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("rate %v: answered %d, dropped %d, p50 %v, p99 %v, max %v",
				tt.rate, res.Answered, res.Dropped, res.Latency.P50, res.Latency.P99, res.Latency.Max)
			if !tt.checkP50(res.Latency.P50) {
				t.Errorf("p50 %v, want %s", res.Latency.P50, tt.want)
			}
			if (res.Dropped > 0) != tt.dropped {
				t.Errorf("dropped %d, want dropped: %v", res.Dropped, tt.dropped)
			}
			if res.Mode != ModeOpen || res.Errors.Total() != 0 {
				t.Errorf("mode %q, errors %v", res.Mode, res.Errors)
			}
			// Every arrival of the 1.5s is either answered or dropped.
			if got, want := res.Answered+res.Dropped, uint64(tt.rate*1.5); got != want {
				t.Errorf("answered+dropped = %d, want %d arrivals", got, want)
			}
		})
	}
}

func TestCancelStopsEveryClientPromptly(t *testing.T) {
	release := make(chan struct{})
	target := serve(t, func(ctx *fasthttp.RequestCtx) { <-release })
	t.Cleanup(func() { close(release) }) // runs before the server's shutdown
	tests := []struct {
		name string
		rate float64
	}{{"closed loop", 0}, {"open loop", 50}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var res *Result
			var err error
			done := make(chan struct{})
			go func() {
				defer close(done)
				res, err = Run(ctx, Config{
					Target: target, Source: get("/hang", ""), Rate: tt.rate,
					Requests: 1 << 20, Duration: time.Minute, Timeout: time.Minute, Clients: 4,
				})
			}()
			time.Sleep(300 * time.Millisecond)
			cancel()
			stopped := time.Now()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("Run still running 2s after cancel")
			}
			t.Logf("stopped in %v", time.Since(stopped))
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			if res == nil {
				t.Fatal("no partial result")
			}
			if res.Canceled < 4 || res.Errors.Total() != 0 || res.Answered != 0 {
				t.Errorf("canceled %d, errors %v, answered %d: want >= 4 canceled and nothing else",
					res.Canceled, res.Errors, res.Answered)
			}
			expectNoRunGoroutines(t)
		})
	}
}

func TestErrorsAreSortedByKind(t *testing.T) {
	// A port that was just closed refuses; a listener that hangs up resets.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()

	hangup, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var acceptor sync.WaitGroup
	acceptor.Go(func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0) // close with RST
			c.Close()
		}
	})
	t.Cleanup(func() { hangup.Close(); acceptor.Wait() })

	slow := serve(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(300 * time.Millisecond) })

	tests := []struct {
		name   string
		target string
		want   ErrorKind
	}{
		{"refused", closedPort, Refused},
		{"reset", hangup.Addr().String(), Reset},
		{"timeout", slow, Timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 6
			res, err := Run(context.Background(), Config{
				Target: tt.target, Source: get("/", ""), Requests: n, Duration: 5 * time.Second,
				Clients: 2, Timeout: 50 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Errors[tt.want]; got != n || res.Errors.Total() != n {
				t.Errorf("errors %v (%v), want all %d %s", res.Errors, res.Errors.ByName(), n, tt.want)
			}
			if k := res.Kinds[0]; k.Errors != res.Errors {
				t.Errorf("kind errors %v, run errors %v", k.Errors, res.Errors)
			}
			// Only timeouts carry a latency, and it is at least the timeout.
			wantSamples := uint64(0)
			if tt.want == Timeout {
				wantSamples = n
				if res.Latency.Min < 50*time.Millisecond {
					t.Errorf("a timeout recorded %v, under the 50ms timeout", res.Latency.Min)
				}
			}
			if res.Latency.Count != wantSamples {
				t.Errorf("latency samples %d, want %d", res.Latency.Count, wantSamples)
			}
		})
	}
}

func TestRequestsGoToTheTargetWhateverTheSourceSays(t *testing.T) {
	var hosts sync.Map
	target := serve(t, func(ctx *fasthttp.RequestCtx) { hosts.Store(string(ctx.Host()), true) })
	src := SourceFunc(func(_ *rand.Rand, req *fasthttp.Request) string {
		req.SetRequestURI("http://example.com/elsewhere")
		return ""
	})
	res, err := Run(context.Background(), Config{Target: target, Source: src, Requests: 3, Duration: 5 * time.Second, Clients: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Answered != 3 {
		t.Fatalf("answered %d, want 3", res.Answered)
	}
	want := strings.TrimPrefix(target, "http://")
	hosts.Range(func(k, _ any) bool {
		if k != want {
			t.Errorf("server saw Host %q, want %q", k, want)
		}
		return true
	})
}

func TestProgressIsReportedEverySecond(t *testing.T) {
	target := serve(t, func(ctx *fasthttp.RequestCtx) {})
	var mu sync.Mutex
	var seen []Progress
	res, err := Run(context.Background(), Config{
		Target: target, Source: get("/", ""), Rate: 200, Requests: 1000, Duration: 2200 * time.Millisecond,
		Progress: func(p Progress) {
			mu.Lock()
			seen = append(seen, p)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("progress called %d times in 2.2s, want 2: %v", len(seen), seen)
	}
	for i, p := range seen {
		if want := time.Duration(i+1) * time.Second; p.Elapsed < want || p.Elapsed > want+500*time.Millisecond {
			t.Errorf("call %d at %v, want about %v", i, p.Elapsed, want)
		}
		if p.Throughput < 150 || p.Throughput > 250 {
			t.Errorf("call %d: throughput %v, want about 200/s", i, p.Throughput)
		}
		if p.P99 <= 0 || !strings.Contains(p.String(), "answered") {
			t.Errorf("call %d: p99 %v, line %q", i, p.P99, p)
		}
	}
	if seen[1].Answered <= seen[0].Answered {
		t.Errorf("answers did not grow: %d then %d", seen[0].Answered, seen[1].Answered)
	}
	// 2.2s: two seconds charted, the last 0.2s folded into the second.
	var charted uint64
	for _, s := range res.Series {
		charted += s.Answered
	}
	if len(res.Series) != 2 || res.Answered != 440 || charted != 440 {
		t.Errorf("series of %d seconds holding %d answers, %d answered; want 2, 440 and 440", len(res.Series), charted, res.Answered)
	}
}

func TestConfigIsValidated(t *testing.T) {
	src := get("/", "")
	ok := Config{Target: "127.0.0.1:1", Source: src, Requests: 1, Duration: time.Second}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"public IP", func(c *Config) { c.Target = "http://10.1.2.3:8080" }, "loopback"},
		{"public name", func(c *Config) { c.Target = "http://example.com" }, "loopback"},
		{"name that starts like loopback", func(c *Config) { c.Target = "http://127.0.0.1.example.com:80" }, "loopback"},
		{"unspecified address", func(c *Config) { c.Target = "http://0.0.0.0:8080" }, "loopback"},
		{"IPv6 public", func(c *Config) { c.Target = "http://[2001:db8::1]:80" }, "loopback"},
		{"https", func(c *Config) { c.Target = "https://127.0.0.1:443" }, "only http"},
		{"a path", func(c *Config) { c.Target = "http://127.0.0.1:80/api" }, "only scheme"},
		{"empty", func(c *Config) { c.Target = "" }, "target"},
		{"no source", func(c *Config) { c.Source = nil }, "Source"},
		{"no count", func(c *Config) { c.Requests = 0 }, "Requests"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "Duration"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "Rate"},
		{"negative clients", func(c *Config) { c.Clients = -1 }, "Clients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.change(&cfg)
			res, err := Run(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if res != nil {
				t.Errorf("got a result for an invalid config")
			}
		})
	}
}

func TestLoopbackTargetsAreAccepted(t *testing.T) {
	tests := []struct {
		raw, dial, host string
	}{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:8080"},
		{"127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:8080"},
		{"http://localhost:3001/", "127.0.0.1:3001", "localhost:3001"},
		{"http://LOCALHOST", "127.0.0.1:80", "LOCALHOST"},
		{"http://127.1.2.3:9", "127.1.2.3:9", "127.1.2.3:9"},
		{"http://[::1]:8080", "[::1]:8080", "[::1]:8080"},
		{"http://[::ffff:127.0.0.1]:8080", "127.0.0.1:8080", "[::ffff:127.0.0.1]:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := parseTarget(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.dial != tt.dial || got.host != tt.host {
				t.Errorf("got dial %q host %q, want %q %q", got.dial, got.host, tt.dial, tt.host)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want ErrorKind
	}{
		{fasthttp.ErrTimeout, Timeout},
		{fasthttp.ErrDialTimeout, Timeout},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Refused},
		{fasthttp.ErrConnectionClosed, Reset},
		{errors.New("malformed"), Other},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify = %v, want %v", got, tt.want)
			}
		})
	}
}
