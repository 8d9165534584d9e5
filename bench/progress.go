package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/style-shepherd/sheepdog/bench/load"
)

// progress writes the bench's live line and its messages to stderr. On a
// terminal the live line is rewritten in place with a carriage return;
// elsewhere (a log, CI) each update is a line of its own.
type progress struct {
	mu   sync.Mutex // protects w and open: the load's reporter and the failover's timer both write
	w    io.Writer
	tty  bool
	open bool // a live line is on screen, without its newline
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w)}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// update shows a row's state, such as "browse · sheepdog  3s: 41250
// answered (13750/s, p99 2.1ms), 0 failed, 0 dropped, 16 in flight".
func (p *progress) update(label string, st load.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s  %s", label, st)
		p.open = true
		return
	}
	fmt.Fprintf(p.w, "%s  %s\n", label, st)
}

// logf writes one message on a line of its own, after any live line.
func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// clear removes a live line from the screen, so that what is written next
// (the table, on stdout) starts on a clean line.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *progress) clearLocked() {
	if p.open {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.open = false
	}
}
