package servicetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PostgresServer is a PostgreSQL server of the test's own, in a fresh
// data directory on a free loopback port, so that a fault test can stop
// and restart it under load without touching the shared one. It runs as
// the postgres user when the test runs as root (initdb refuses root).
type PostgresServer struct {
	// DSN reaches the server's postgres database as the postgres user.
	DSN  string
	Addr string

	t    testing.TB
	bin  string // the directory of initdb, pg_ctl, postgres
	dir  string // the data directory
	port int
	as   string // run the server's commands as this user; empty: as we are

	mu      sync.Mutex
	running bool
}

// StartPostgresServer makes a data directory with initdb and starts a
// server in it. The server is stopped and its directory removed when the
// test ends. Without PostgreSQL's server programs the test is skipped,
// or fails under SHEEPDOG_REQUIRE_SERVICES=1.
func StartPostgresServer(t testing.TB) *PostgresServer {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		unavailable(t, "postgres server programs: %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	// Not t.TempDir: its parents are private to root, and the server may
	// run as postgres.
	dir, err := os.MkdirTemp("", "sheepdog-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &PostgresServer{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		t:    t, bin: bin, dir: dir, port: port,
	}
	s.DSN = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", s.Addr)
	t.Cleanup(func() {
		s.stop("immediate")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		s.as = "postgres"
		if err := chownTo(dir, s.as); err != nil {
			unavailable(t, "postgres data directory: %v", err)
		}
	}
	if out, err := s.command("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Start()
	return s
}

// postgresBin finds the directory of the server programs: Debian keeps
// them under /usr/lib/postgresql/<version>/bin, off the PATH.
func postgresBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(found) == 0 {
		return "", fmt.Errorf("no pg_ctl on the PATH or under /usr/lib/postgresql")
	}
	sort.Strings(found) // the newest version last
	return filepath.Dir(found[len(found)-1]), nil
}

func chownTo(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

func (s *PostgresServer) data() string { return filepath.Join(s.dir, "data") }

// command is one of the server's programs, run as the server's user.
func (s *PostgresServer) command(program string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, program)
	if s.as != "" {
		return exec.Command("runuser", append([]string{"-u", s.as, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// Start starts the server if it is stopped and waits until it takes
// connections. Call it from the test's goroutine: it fails the test on
// error.
func (s *PostgresServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return
	}
	opts := strings.Join([]string{
		"-p", strconv.Itoa(s.port), "-k", s.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "max_connections=100",
	}, " ")
	out, err := s.command("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"),
		"-o", opts, "-w", "-t", "30", "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		s.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	if err := probePostgres(s.Addr); err != nil {
		s.t.Fatalf("postgres on %s after start: %v", s.Addr, err)
	}
	s.running = true
}

// Stop shuts the server down the way a restart does (pg_ctl's fast
// mode): open transactions are rolled back, sessions are cut, and what
// was committed stays. Stopping a stopped server does nothing.
func (s *PostgresServer) Stop() {
	s.t.Helper()
	if err := s.stop("fast"); err != nil {
		s.t.Fatalf("pg_ctl stop: %v", err)
	}
}

func (s *PostgresServer) stop(mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	s.running = false
	out, err := s.command("pg_ctl", "-D", s.data(), "-m", mode, "-w", "-t", "30", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// Restart stops the server and starts it again after down.
func (s *PostgresServer) Restart(down time.Duration) {
	s.t.Helper()
	s.Stop()
	time.Sleep(down)
	s.Start()
}
