package servicetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestPostgresAddr(t *testing.T) {
	tests := []struct {
		dsn, want string
		err       bool
	}{
		{DefaultPostgresDSN, "127.0.0.1:5432", false},
		{"postgresql://u:p@db.local:6543/x", "db.local:6543", false},
		{"postgres:///test", "127.0.0.1:5432", false},
		{"host=10.0.0.2 port=5433 dbname=test", "10.0.0.2:5433", false},
		{"dbname=test", "127.0.0.1:5432", false},
		{"host=/var/run/postgresql", "", true},
		{"postgres://[::1", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			got, err := postgresAddr(tt.dsn)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("postgresAddr(%q) = %q, %v; want %q, error %v", tt.dsn, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestProbePostgres(t *testing.T) {
	tests := []struct {
		name   string
		answer string // what the fake server writes after reading 8 bytes
		ok     bool
	}{
		{"postgres without TLS", "N", true},
		{"postgres with TLS", "S", true},
		{"another server", "HTTP/1.1 400 Bad Request\r\n", false},
		{"hangs up", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.answer)
			if err := probePostgres(addr); (err == nil) != tt.ok {
				t.Fatalf("probePostgres = %v, want ok %v", err, tt.ok)
			}
		})
	}
	t.Run("closed port", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if err := probePostgres(l.Addr().String()); err == nil {
			t.Fatal("a closed port passed for PostgreSQL")
		}
	})
}

// fakeServer answers one connection: it reads the 8-byte SSLRequest,
// writes answer and hangs up.
func fakeServer(t *testing.T, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var req [8]byte
		if _, err := io.ReadFull(conn, req[:]); err != nil {
			return
		}
		_, _ = conn.Write([]byte(answer))
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String()
}

func TestPostgresDSN(t *testing.T) {
	dsn := PostgresDSN(t)
	if dsn == "" {
		t.Fatal("empty DSN")
	}
}

func TestKeyPrefixIsCleanedUp(t *testing.T) {
	addr := RedisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	var prefix string
	t.Run("inner", func(t *testing.T) {
		prefix = KeyPrefix(t)
		if !strings.HasPrefix(prefix, "sheepdog-test:TestKeyPrefixIsCleanedUp_inner:") {
			t.Fatalf("prefix %q does not name the test", prefix)
		}
		if other := KeyPrefix(t); other == prefix {
			t.Fatal("two calls gave the same prefix")
		}
		for _, k := range []string{"a", "b", "c"} {
			if err := c.Set(ctx, prefix+k, "1", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("after the test: keys %v, %v; want none", keys, err)
	}
}

func TestRedisServerStopStartPause(t *testing.T) {
	CheckGoroutines(t)
	s := StartRedisServer(t)
	if err := pingRedis(s.Addr); err != nil {
		t.Fatalf("fresh server: %v", err)
	}
	s.Stop()
	s.Stop()
	if err := pingRedis(s.Addr); err == nil {
		t.Fatal("stopped server answered")
	}
	s.Start()
	if err := pingRedis(s.Addr); err != nil {
		t.Fatalf("restarted server: %v", err)
	}

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1,
		ContextTimeoutEnabled: true, ReadTimeout: 100 * time.Millisecond})
	defer c.Close()
	s.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := c.Ping(ctx).Err()
	cancel()
	s.Resume()
	if err == nil {
		t.Fatal("paused server answered")
	}
	if err := pingRedis(s.Addr); err != nil {
		t.Fatalf("resumed server: %v", err)
	}
}

func TestCheckGoroutinesCatchesALeak(t *testing.T) {
	stop := make(chan struct{})
	ft := &fakeTB{TB: t}
	CheckGoroutines(ft)
	go func() { <-stop }()
	start := time.Now()
	ft.runCleanups()
	close(stop)
	if !ft.failed {
		t.Fatal("a goroutine left running was not reported")
	}
	if !strings.Contains(ft.msg, "TestCheckGoroutinesCatchesALeak") {
		t.Fatalf("report does not show the leaked goroutine's stack:\n%s", ft.msg)
	}
	if d := time.Since(start); d < leakWait {
		t.Fatalf("reported after %v, before giving it %v to exit", d, leakWait)
	}
}

func TestCheckGoroutinesWaitsForExit(t *testing.T) {
	ft := &fakeTB{TB: t}
	CheckGoroutines(ft)
	go time.Sleep(50 * time.Millisecond)
	ft.runCleanups()
	if ft.failed {
		t.Fatalf("a goroutine that exits on its own was reported:\n%s", ft.msg)
	}
}

// fakeTB records a failure instead of failing, and runs cleanups on demand.
type fakeTB struct {
	testing.TB
	cleanups []func()
	failed   bool
	msg      string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func (f *fakeTB) Errorf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
}

func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestStartRedisCluster(t *testing.T) {
	addrs := StartRedisCluster(t, 3)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer c.Close()
	ctx := context.Background()
	// Keys in different slots, written and read through the cluster.
	for _, k := range []string{"a", "b", "c", "d"} {
		if err := c.Set(ctx, k, k, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 4 {
		t.Fatalf("DBSIZE over the cluster = %d, %v; want 4", n, err)
	}
}
