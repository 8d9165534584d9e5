package servicetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a private redis-server may take to answer.
const startTimeout = 5 * time.Second

// RedisServer is a redis-server of the test's own on a free loopback
// port, with no persistence, so that fault tests can kill, pause and
// restart it without touching the shared one.
type RedisServer struct {
	Addr string

	t    testing.TB
	bin  string
	dir  string
	port int
	args []string // more redis-server options

	mu  sync.Mutex // protects cmd
	cmd *exec.Cmd  // nil while stopped
}

// StartRedis starts a private redis-server and returns its address and
// functions that kill it and start it again on the same address. It is
// killed when the test ends.
func StartRedis(t testing.TB) (addr string, stop, start func()) {
	t.Helper()
	s := StartRedisServer(t)
	return s.Addr, s.Stop, s.Start
}

// StartRedisServer is StartRedis, returning the server itself, which can
// also be paused.
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	return startRedisServer(t)
}

func startRedisServer(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server: %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	s := &RedisServer{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		t:    t,
		bin:  bin,
		dir:  t.TempDir(),
		port: port,
		args: args,
	}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// FreeAddr is a loopback address where nothing listens now: a server
// may take it, and until one does, connections to it are refused.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before redis-server binds it; that is rare enough for tests.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the server if it is stopped and waits until it answers
// PING. Call it from the test's goroutine: it fails the test on error.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"),
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	if err := s.waitReady(); err != nil {
		s.stopLocked()
		s.t.Fatalf("redis-server on %s: %v (log in %s)", s.Addr, err, s.dir)
	}
}

func (s *RedisServer) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	for {
		// Dial first: go-redis logs every refused connection.
		err := dialOnce(s.Addr)
		if err == nil {
			if err = pingRedis(s.Addr); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PING answer after %v: %w", startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dialOnce(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Stop kills the server at once, as a crash would, and waits for it to
// exit. Stopping a stopped server does nothing.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *RedisServer) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // SIGKILL also ends a paused process
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause freezes the server (SIGSTOP): connections stay open and calls
// hang until their timeouts, as with a Valkey that is alive but stuck.
func (s *RedisServer) Pause() { s.signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *RedisServer) Resume() { s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redis-server on %s is not running", s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal redis-server: %v", err)
	}
}
