package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/style-shepherd/sheepdog/bench/compare"
)

// valkey is the bench's own redis-server, standing in for Valkey (they
// speak the same protocol) as Sheepdog's L2. It is the bench's so that the
// failover scenario can stop and restart it without touching anyone
// else's, and so that every run starts with an empty L2.
type valkey struct {
	bin  string
	addr string // 127.0.0.1:PORT, the same across restarts
	dir  string

	mu   sync.Mutex // protects proc: the failover stops and starts it while the suite may close it
	proc *compare.Process
}

// valkeyStartTimeout bounds a start; redis-server without persistence is
// up within milliseconds.
const valkeyStartTimeout = 10 * time.Second

// newValkey finds redis-server and picks its port. It starts nothing.
func newValkey(dir string) (*valkey, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not on PATH: the bench runs its own as Sheepdog's L2 (Debian: apt-get install redis-server)")
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &valkey{bin: bin, addr: addr, dir: dir}, nil
}

// start runs redis-server on v.addr and returns once it answers PING.
func (v *valkey) start(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc != nil {
		return nil
	}
	_, port, _ := net.SplitHostPort(v.addr)
	p, err := compare.Start(compare.Command{
		Name: "redis-server",
		Path: v.bin,
		// No persistence: a restart comes back empty, as a replaced
		// Valkey node would.
		Args: []string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
			"--dir", v.dir, "--daemonize", "no"},
		Log: filepath.Join(v.dir, "redis-server.log"),
	})
	if err != nil {
		return err
	}
	if err := p.WaitReady(ctx, valkeyStartTimeout, func(ctx context.Context) error { return ping(ctx, v.addr) }); err != nil {
		p.Stop(time.Second)
		return err
	}
	v.proc = p
	return nil
}

// stop stops redis-server; start runs it again on the same port.
func (v *valkey) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc != nil {
		v.proc.Stop(time.Second)
		v.proc = nil
	}
}

// ping sends PING and expects +PONG.
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// freeAddr picks a free port on 127.0.0.1. Another process could take it
// before the child binds it; on a test machine that is rare, and the child
// then fails to start with a clear message.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
