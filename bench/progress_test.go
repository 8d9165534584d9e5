package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/bench/load"
)

func TestProgress(t *testing.T) {
	st := load.Progress{Elapsed: 2 * time.Second, Answered: 100, Throughput: 50, P99: time.Millisecond}
	tests := []struct {
		name string
		tty  bool
		want string
	}{
		{"a log gets a line per update", false,
			"browse · origin  2s: 100 answered (50/s, p99 1ms), 0 failed, 0 dropped, 0 in flight\n" +
				"browse · origin  2s: 100 answered (50/s, p99 1ms), 0 failed, 0 dropped, 0 in flight\n" +
				"done\n"},
		{"a terminal gets one line rewritten in place", true,
			"\r\x1b[Kbrowse · origin  2s: 100 answered (50/s, p99 1ms), 0 failed, 0 dropped, 0 in flight" +
				"\r\x1b[Kbrowse · origin  2s: 100 answered (50/s, p99 1ms), 0 failed, 0 dropped, 0 in flight" +
				"\r\x1b[Kdone\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := newProgress(&b)
			p.tty = tt.tty
			p.update("browse · origin", st)
			p.update("browse · origin", st)
			p.logf("done")
			p.clear() // nothing to clear after a message
			if b.String() != tt.want {
				t.Errorf("wrote %q, want %q", b.String(), tt.want)
			}
		})
	}
	if newProgress(&bytes.Buffer{}).tty {
		t.Error("a buffer was taken for a terminal")
	}
}
