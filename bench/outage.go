package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/style-shepherd/sheepdog/bench/load"
	"github.com/style-shepherd/sheepdog/bench/report"
	"github.com/style-shepherd/sheepdog/bench/scenario"
)

// outage stops the bench's Valkey part of the way through a row and
// starts it again later. It runs on its own goroutine, which finish stops
// and waits for.
type outage struct {
	valkey   *valkey
	out      *progress
	label    string
	start    time.Time
	finished chan struct{} // closed by finish: the row is over
	done     sync.WaitGroup

	// Written by the goroutine, read after finish.
	stoppedAt, restartedAt time.Duration // from the start; 0 when it did not happen
	readyIn                time.Duration // from the restart to the first PONG
	err                    error
}

// startOutage schedules the outage o over a row of length.
func startOutage(ctx context.Context, v *valkey, o scenario.Outage, length time.Duration, out *progress, label string) *outage {
	ot := &outage{valkey: v, out: out, label: label, start: time.Now(), finished: make(chan struct{})}
	ot.done.Go(func() { ot.run(ctx, o, length) })
	return ot
}

func (ot *outage) run(ctx context.Context, o scenario.Outage, length time.Duration) {
	if !ot.sleepUntil(ctx, scale(length, o.From)) {
		return
	}
	ot.valkey.stop()
	ot.stoppedAt = time.Since(ot.start)
	ot.out.logf("%s: Valkey stopped at %.1fs", ot.label, ot.stoppedAt.Seconds())
	// The row may end before the restart is due: restart all the same,
	// so that the rows after it have their L2.
	ot.sleepUntil(ctx, scale(length, o.To))
	if ctx.Err() != nil {
		return
	}
	began := time.Now()
	ot.err = ot.valkey.start(ctx)
	ot.restartedAt, ot.readyIn = began.Sub(ot.start), time.Since(began)
	ot.out.logf("%s: Valkey started again at %.1fs", ot.label, ot.restartedAt.Seconds())
}

func scale(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }

// sleepUntil waits until at after the start; false when the row or the
// run ended first.
func (ot *outage) sleepUntil(ctx context.Context, at time.Duration) bool {
	timer := time.NewTimer(time.Until(ot.start.Add(at)))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ot.finished:
		return false
	case <-ctx.Done():
		return false
	}
}

// finish ends the outage (restarting Valkey if it is down) and waits for
// its goroutine. The error is the restart's.
func (ot *outage) finish() error {
	close(ot.finished)
	ot.done.Wait()
	if ot.err != nil {
		return fmt.Errorf("failover: restarting Valkey: %w", ot.err)
	}
	return nil
}

// timeline says when Valkey was down and what each second of the row saw,
// for the report's notes: "failover · sheepdog: Valkey stopped at 3.3s,
// started again at 6.7s (answering 12ms later); per second: 0s 5120/s p99
// 2.10ms; 1s …".
func (ot *outage) timeline(res *load.Result) string {
	var b strings.Builder
	b.WriteString(ot.label + ": ")
	switch {
	case ot.stoppedAt == 0:
		b.WriteString("the row ended before Valkey was due to stop")
	case ot.restartedAt == 0:
		fmt.Fprintf(&b, "Valkey stopped at %.1fs and was not started again", ot.stoppedAt.Seconds())
	default:
		fmt.Fprintf(&b, "Valkey stopped at %.1fs, started again at %.1fs (answering %s later)",
			ot.stoppedAt.Seconds(), ot.restartedAt.Seconds(), report.Millis(float64(ot.readyIn)/float64(time.Millisecond)))
	}
	b.WriteString("; per second:")
	for i, sec := range res.Series {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %.0fs %.0f/s p99 %s", sec.At.Seconds(), sec.Throughput,
			report.Millis(float64(sec.P99)/float64(time.Millisecond)))
		if sec.Failed > 0 {
			fmt.Fprintf(&b, " (%d failed)", sec.Failed)
		}
	}
	return b.String()
}
