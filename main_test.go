package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

func TestCheckPrintsEveryRoute(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-check", "-config", "configs/sheepdog.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	cfg, err := configs.Load("configs/sheepdog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Routes {
		where := r.Match.Path + r.Match.PathPrefix
		if !strings.Contains(out.String(), r.Name) || !strings.Contains(out.String(), where) {
			t.Errorf("route %s (%s) missing from the table:\n%s", r.Name, where, out.String())
		}
	}
}

func TestBadConfigExitsOne(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("upstream:\n  url: http://127.0.0.1:1\n  timout: 3s\nroutes: []\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"-config", bad}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if msg := errOut.String(); !strings.Contains(msg, "bad.yaml:3:") || !strings.Contains(msg, "timout") {
		t.Errorf("message %q does not name file:line and key", msg)
	}
}

// TestFlagsThatConflict: a flag that would be ignored, or an argument left
// over, is a usage error (exit 2), not a silent choice between them.
func TestFlagsThatConflict(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-check", "-demo"}, "-demo runs its own config"},
		{[]string{"-config", "configs/sheepdog.yaml", "-demo"}, "-demo runs its own config"},
		{[]string{"-check", "-config", "configs/minimal.yaml", "configs/sheepdog.yaml"}, `unexpected argument "configs/sheepdog.yaml"`},
		{[]string{"-check"}, "-config is required"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, %q; want 2 and a message saying %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}

// TestSIGTERMLosesNothing runs the built binary under a bounded load of
// slow requests, sends SIGTERM mid-run, and checks that every request
// Sheepdog accepted was answered in full and that it exits 0.
func TestSIGTERMLosesNothing(t *testing.T) {
	bin := buildSheepdog(t)
	app, originAddr := startApp(t)
	app.SetLatency("echo", 100*time.Millisecond)

	at := newBinaryPlace(t, originAddr)
	at.write(t, `
server: {shutdown_grace: 5s}
routes:
  - {name: all, match: {path_prefix: /}, pass: {}}
`)
	listen := at.listen
	cmd, logs := runSheepdog(t, bin, at.path, listen)

	c := &fasthttp.HostClient{Addr: listen, MaxIdemponentCallAttempts: 1, ReadTimeout: 10 * time.Second}
	var (
		signalled     atomic.Bool
		ok, refused   atomic.Int64
		inFlightAtSig atomic.Int64
		inFlight      atomic.Int64
		mu            sync.Mutex
		lost          []string
		wg            sync.WaitGroup
		deadline      = time.Now().Add(10 * time.Second) // the load's bound
		body          = strings.Repeat("s", 10000)
		sendOne       func() bool
	)
	sendOne = func() bool {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("/__origin/echo")
		req.Header.SetHost(listen)
		req.Header.SetMethod("POST")
		req.SetBodyString(body)
		inFlight.Add(1)
		err := c.Do(req, resp)
		inFlight.Add(-1)
		switch {
		case err == nil && resp.StatusCode() == 200 && len(resp.Body()) == len(body):
			ok.Add(1)
			return true
		case err != nil && signalled.Load() && refusedAtShutdown(err):
			refused.Add(1)
			return false
		default:
			mu.Lock()
			lost = append(lost, fmt.Sprintf("err=%v status=%d bytes=%d", err, resp.StatusCode(), len(resp.Body())))
			mu.Unlock()
			return false
		}
	}
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 2000 && time.Now().Before(deadline); n++ {
				if !sendOne() && signalled.Load() {
					return
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	inFlightAtSig.Store(inFlight.Load())
	signalled.Store(true)
	sigAt := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	err := cmd.Wait()
	exitTook := time.Since(sigAt)

	if err != nil {
		t.Errorf("exit: %v\n%s", err, logs.String())
	}
	for _, l := range lost {
		t.Errorf("lost request: %s", l)
	}
	if inFlightAtSig.Load() == 0 {
		t.Errorf("no request was in flight at SIGTERM; the test proves nothing")
	}
	if exitTook > 3*time.Second {
		t.Errorf("exit took %v after SIGTERM", exitTook)
	}
	t.Logf("answered %d, %d in flight at SIGTERM, %d refused after it, exit %v after SIGTERM",
		ok.Load(), inFlightAtSig.Load(), refused.Load(), exitTook.Round(time.Millisecond))
}

// binaryPlace is where a test's built Sheepdog listens, the app it is in
// front of, and its config file.
type binaryPlace struct{ listen, admin, origin, path string }

func newBinaryPlace(t *testing.T, origin string) binaryPlace {
	return binaryPlace{listen: servicetest.FreeAddr(t), admin: servicetest.FreeAddr(t), origin: origin,
		path: filepath.Join(t.TempDir(), "sheepdog.yaml")}
}

// write puts the place's listen, admin and upstream in the config file,
// and rest after them.
func (b binaryPlace) write(t *testing.T, rest string) {
	t.Helper()
	head := fmt.Sprintf("listen: %s\nadmin: {listen: %s}\nupstream: {url: \"http://%s\"}\n", b.listen, b.admin, b.origin)
	if err := os.WriteFile(b.path, []byte(head+rest), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runSheepdog starts bin on the config at cfgPath and waits until it
// listens; its log goes to the returned buffer.
func runSheepdog(t *testing.T, bin, cfgPath, listen string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, "-config", cfgPath)
	logs := new(bytes.Buffer)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUp(t, listen)
	return cmd, logs
}

// buildSheepdog builds the binary into the test's directory; -short
// skips the test.
func buildSheepdog(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs a load")
	}
	bin := filepath.Join(t.TempDir(), "sheepdog")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startApp runs the simulated app until the test ends.
func startApp(t *testing.T) (*shepherd.App, string) {
	t.Helper()
	app := shepherd.New(shepherd.Config{})
	addr, err := app.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app, addr
}

// startWatched starts cmd, its standard error to logs (read it only once
// exited has said it is gone: exec writes it from a goroutine until then),
// and kills it when the test ends if it still runs.
func startWatched(t *testing.T, cmd *exec.Cmd) (logs *bytes.Buffer, exited <-chan error) {
	t.Helper()
	logs = new(bytes.Buffer)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return logs, done
}

func waitUp(t *testing.T, addr string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("sheepdog did not listen on %s", addr)
}

// TestSIGTERMFlushesWrites sends SIGTERM to the built binary in the
// middle of 2,000 batched writes (orders into PostgreSQL, cache sets into
// Valkey) and checks that every write answered 2xx is in its sink.
// refusedAtShutdown reports whether a request's error after SIGTERM says
// Sheepdog never took it: the listener was closed (refused), or an idle
// keep-alive connection was closed before the request was read. The client
// sees that as the connection closed, as a broken pipe when it was still
// writing, or as a reset when the close found the request unread.
func refusedAtShutdown(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

func TestSIGTERMFlushesWrites(t *testing.T) {
	bin := buildSheepdog(t)
	redisAddr, prefix := servicetest.RedisAddr(t), servicetest.KeyPrefix(t)
	pool, table := servicetest.OrdersTable(t, 0)
	_, originAddr := startApp(t)

	at := newBinaryPlace(t, originAddr)
	at.write(t, fmt.Sprintf(`
postgres: {dsn: "%s"}
server: {shutdown_grace: 5s}
routes:
  - name: create-order
    match: {method: POST, path: /api/vultr/postgres/orders}
    batch:
      sink: postgres
      table: %s
      columns: {order_id: "{id:order_}", user_id: "{body.user_id}", items: "{body.items}", total_amount: "{body.total_amount}"}
      returning: {orderId: order_id}
      max_wait: 20ms
  - name: cache-set
    match: {method: POST, path: "/api/vultr/valkey/cache/{key}"}
    batch: {sink: valkey, key: "%s{path.key}", value: "{body.value}", ttl: "{body.ttl=0}", addrs: ["%s"], max_wait: 20ms}
`, servicetest.PostgresDSN(t), table, prefix, redisAddr))
	listen := at.listen
	cmd, logs := runSheepdog(t, bin, at.path, listen)

	const n = 2000
	c := &fasthttp.HostClient{Addr: listen, MaxConns: 256, MaxIdemponentCallAttempts: 1, ReadTimeout: 10 * time.Second}
	var (
		answered, refused atomic.Int64
		mu                sync.Mutex
		okOrders          = map[string]bool{} // user_id of each order answered 2xx
		okSets            []int
		other             []string
		wg                sync.WaitGroup
		next              atomic.Int64
	)
	send := func(i int) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetHost(listen)
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/json")
		if i%2 == 0 {
			req.SetRequestURI("/api/vultr/postgres/orders")
			req.SetBodyString(fmt.Sprintf(`{"user_id":"w_%d","items":[],"total_amount":3}`, i))
		} else {
			req.SetRequestURI(fmt.Sprintf("/api/vultr/valkey/cache/w%d", i))
			req.SetBodyString(fmt.Sprintf(`{"value":"v%d","ttl":300}`, i))
		}
		err := c.Do(req, resp)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && resp.StatusCode()/100 == 2:
			answered.Add(1)
			if i%2 == 0 {
				okOrders[fmt.Sprintf("w_%d", i)] = true
			} else {
				okSets = append(okSets, i)
			}
		case err != nil && refusedAtShutdown(err):
			refused.Add(1) // after SIGTERM: never taken, so never acknowledged
		default:
			other = append(other, fmt.Sprintf("write %d: err=%v status=%d %s", i, err, resp.StatusCode(), resp.Body()))
		}
	}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				send(i)
				time.Sleep(2 * time.Millisecond) // spread the 2,000 over time
			}
		}()
	}
	for answered.Load() < n/3 {
		time.Sleep(time.Millisecond)
	}
	atSignal := answered.Load()
	cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, logs.String())
	}

	for i, o := range other {
		if i < 5 {
			t.Errorf("neither acknowledged nor refused: %s", o)
		}
	}
	rows, err := pool.Query(context.Background(), `SELECT user_id FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var u string
		rows.Scan(&u)
		stored[u]++
	}
	rows.Close()
	for u := range okOrders {
		if stored[u] != 1 {
			t.Errorf("order %s answered 2xx is stored %d times", u, stored[u])
		}
	}
	rc := redis.NewClient(&redis.Options{Addr: redisAddr, DisableIdentity: true})
	defer rc.Close()
	for _, i := range okSets {
		if got := rc.Get(context.Background(), fmt.Sprintf("%sw%d", prefix, i)).Val(); got != fmt.Sprintf("v%d", i) {
			t.Errorf("set w%d answered 2xx reads %q", i, got)
		}
	}
	if atSignal == 0 || answered.Load() == atSignal {
		t.Errorf("%d answered before SIGTERM and %d in all: the signal did not land mid-burst", atSignal, answered.Load())
	}
	t.Logf("%d writes: %d answered 2xx (%d orders, %d sets; %d of them after SIGTERM), %d refused after SIGTERM; all acknowledged writes are in their sinks",
		n, answered.Load(), len(okOrders), len(okSets), answered.Load()-atSignal, refused.Load())
}

// TestSIGHUPReloads: SIGHUP reads the config file again, and the built
// binary serves its new routes without a restart.
func TestSIGHUPReloads(t *testing.T) {
	bin := buildSheepdog(t)
	_, originAddr := startApp(t)
	at := newBinaryPlace(t, originAddr)
	listen := at.listen
	write := func(action string) {
		at.write(t, "routes:\n  - {name: products, match: {method: GET, path: /api/vultr/postgres/products}, "+action+"}\n")
	}
	write("pass: {}")
	cmd, logs := runSheepdog(t, bin, at.path, listen)
	c := &fasthttp.HostClient{Addr: listen, ReadTimeout: 5 * time.Second}
	xcache := func() string {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + listen + "/api/vultr/postgres/products?limit=2")
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("products: %v %d", err, resp.StatusCode())
		}
		return string(resp.Header.Peek("X-Cache"))
	}
	if x := xcache() + xcache(); x != "" {
		t.Fatalf("a pass route answered X-Cache %q", x)
	}
	write("cache: {ttl: 60s}")
	cmd.Process.Signal(syscall.SIGHUP)
	reloaded := false
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !reloaded; time.Sleep(20 * time.Millisecond) {
		reloaded = xcache() == "HIT"
	}
	if !reloaded {
		t.Errorf("no HIT within 5 s of SIGHUP:\n%s", logs)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), `"msg":"reloaded"`) {
		t.Errorf("the reload was not logged:\n%s", logs)
	}
}

// TestEarlySIGHUP: a SIGHUP while Sheepdog starts (a supervisor's reload
// sent too soon) does not kill it, whose default action it would be.
// Its L2 does not answer, so start-up waits for the first subscription.
func TestEarlySIGHUP(t *testing.T) {
	bin := buildSheepdog(t)
	_, originAddr := startApp(t)
	at := newBinaryPlace(t, originAddr)
	at.write(t, `
cache: {l2: {addrs: ["127.0.0.1:1"]}}
routes:
  - {name: all, match: {path_prefix: /}, pass: {}}
`)
	listen := at.listen
	cmd := exec.Command(bin, "-config", at.path)
	logs, exited := startWatched(t, cmd)
	time.Sleep(300 * time.Millisecond) // in New, waiting for L2
	cmd.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-exited:
		t.Fatalf("a SIGHUP during start-up ended it: %v\n%s", err, logs)
	case <-time.After(time.Second):
	}
	waitUp(t, listen)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, logs)
	}
}

// TestOutOfDescriptorsKeepsServing: more clients than the process may hold
// descriptors (ulimit -n 64) make accept fail with EMFILE. Sheepdog waits
// and accepts again once connections close; it used to end Serve and exit 1.
func TestOutOfDescriptorsKeepsServing(t *testing.T) {
	bin := buildSheepdog(t)
	_, originAddr := startApp(t)
	at := newBinaryPlace(t, originAddr)
	at.write(t, "routes:\n  - {name: all, match: {path_prefix: /}, pass: {}}\n")
	cmd := exec.Command("sh", "-c", `ulimit -n 64 && exec "$0" -config "$1"`, bin, at.path)
	logs, exited := startWatched(t, cmd)
	waitUp(t, at.listen)

	var conns []net.Conn
	for range 100 {
		c, err := net.DialTimeout("tcp", at.listen, 2*time.Second)
		if err != nil {
			break // the backlog is full: enough
		}
		conns = append(conns, c)
	}
	time.Sleep(500 * time.Millisecond) // accept fails, and fails again
	for _, c := range conns {
		c.Close()
	}
	select {
	case err := <-exited:
		t.Fatalf("Sheepdog exited (%v) with %d connections open:\n%s", err, len(conns), logs)
	default:
	}

	c := &fasthttp.HostClient{Addr: at.listen, ReadTimeout: 5 * time.Second}
	code, _, err := c.Get(nil, "http://"+at.listen+"/api/vultr/postgres/products?limit=1")
	if err != nil || code != 200 {
		t.Errorf("after the connections closed: %d %v, want 200", code, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs)
		}
		// The log is read once the process is gone: exec writes it from
		// a goroutine of its own until then.
		if !strings.Contains(logs.String(), "too many open files") {
			t.Errorf("%d connections never ran it out of descriptors; the test proves nothing:\n%s", len(conns), logs)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("no exit within 10s of SIGTERM")
	}
}
