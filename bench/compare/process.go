// Package compare runs the servers a bench run measures as processes of
// their own on loopback ports, so that Sheepdog, nginx and Varnish are
// measured the same way: nginx and Varnish set up as caches in front of
// the origin (Caches), and, through Process, every other child the bench
// needs (Sheepdog's own binary, the redis-server that stands in for
// Valkey, the go build that makes Sheepdog).
//
// Each child runs in its own process group. A stop signals the whole
// group, so the workers nginx and Varnish fork go with their parent, and
// a Ctrl-C at the terminal reaches the bench alone, which then stops its
// children in order.
package compare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Command is a child process to start.
type Command struct {
	// Name labels the process in messages: "sheepdog", "nginx", ….
	Name string
	// Path is the program, Args its arguments (without the program).
	Path string
	Args []string
	// Env is the environment; nil inherits the bench's.
	Env []string
	// Dir is the working directory; empty is the bench's.
	Dir string
	// Log receives the child's stdout and stderr, appended. Required:
	// a child that fails to start is explained by its log.
	Log string
}

// Process is a running child. Its owner must call Stop, which returns only
// when the child has exited and been reaped.
type Process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the child has exited and been reaped
	err  error         // how it exited; read only after done

	stopOnce sync.Once
}

// Start starts c in a new process group. On Linux the child also gets
// SIGKILL if the bench itself dies without stopping it (the parent-death
// signal), so even a kill -9 of the bench leaves no server behind.
func Start(c Command) (*Process, error) {
	if c.Log == "" {
		return nil, fmt.Errorf("start %s: no log file", c.Name)
	}
	logFile, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	// The child has its own copy of the descriptor once started.
	defer logFile.Close()
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env, cmd.Dir = c.Env, c.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	p := &Process{name: c.Name, log: c.Log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Name is the label given to Start.
func (p *Process) Name() string { return p.name }

// PID is the child's process id, which is also its process group id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the child has exited, for whatever reason.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Err is how the child exited; nil while it runs or after a clean exit.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stop sends SIGTERM to the child's process group, waits up to grace for
// the child to exit, then sends SIGKILL. Whatever is left of the group
// once the child is gone (a worker it forked and did not wait for) is
// killed too. It returns when the child has been reaped; a second call
// waits for the first.
func (p *Process) Stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		pgid := p.PID()
		signalGroup(pgid, syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			signalGroup(pgid, syscall.SIGKILL)
			<-p.done
		}
		// Nothing of the group should outlive its leader.
		signalGroup(pgid, syscall.SIGKILL)
		waitGroupGone(pgid, time.Second)
	})
}

// WaitReady calls ready every 20ms until it succeeds. It fails when the
// child exits first, when ctx ends, or after timeout, with the tail of the
// child's log to say why.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v); its log:\n%s", p.name, p.err, p.LogTail(15))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready after %v: %v; its log:\n%s", p.name, timeout, err, p.LogTail(15))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// LogTail returns the last n lines of the child's log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func signalGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig) // ESRCH: the group is already empty
}

// waitGroupGone waits, up to limit, until no living process is left in
// the group. A SIGKILL takes effect at once, so this is short.
func waitGroupGone(pgid int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for len(groupMembers(pgid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}
