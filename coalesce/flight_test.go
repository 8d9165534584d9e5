package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlightOneFetchForManyCallers(t *testing.T) {
	var f Flight[string]
	var fetches atomic.Int64
	release := make(chan struct{})
	const n = 100
	var wg sync.WaitGroup
	results := make(chan Result[string], n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- f.Do(context.Background(), "k", func(context.Context) (string, error) {
				fetches.Add(1)
				<-release
				return "v", nil
			})
		}()
	}
	// Let every caller join the flight before it lands.
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(results)
	leaders := 0
	for r := range results {
		if r.Err != nil || r.Value != "v" || !r.Shared {
			t.Errorf("result %+v", r)
		}
		if r.Leader {
			leaders++
			if r.Waiters != n-1 {
				t.Errorf("leader counts %d waiters, want %d", r.Waiters, n-1)
			}
		} else if r.Waiters != 0 {
			t.Errorf("a waiter counts %d waiters, want 0", r.Waiters)
		}
	}
	if fetches.Load() != 1 || leaders != 1 {
		t.Errorf("%d fetches, %d leaders; want 1 and 1", fetches.Load(), leaders)
	}
	if len(f.calls) != 0 {
		t.Errorf("%d join counts left behind", len(f.calls))
	}
}

// TestFlightJoinCountsAreDropped: callers that give up, and a lone
// caller, leave no join count behind however the fetch ends.
func TestFlightJoinCountsAreDropped(t *testing.T) {
	var f Flight[int]
	if r := f.Do(context.Background(), "alone", func(context.Context) (int, error) { return 1, nil }); !r.Leader || r.Waiters != 0 {
		t.Errorf("a lone caller: %+v", r)
	}
	release := make(chan struct{})
	done := make(chan Result[int])
	go func() {
		done <- f.Do(context.Background(), "k", func(context.Context) (int, error) { <-release; return 2, nil })
	}()
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if r := f.Do(ctx, "k", nil); r.Err == nil {
		t.Errorf("a waiter past its deadline: %+v", r)
	}
	close(release)
	if r := <-done; !r.Leader || r.Waiters != 0 {
		t.Errorf("leader after its one waiter gave up: %+v, want 0 waiters", r)
	}
	if len(f.calls) != 0 {
		t.Errorf("%d join counts left behind", len(f.calls))
	}
}

// TestFlightWaiterDeadline: a waiter whose own context ends gets its error
// at once; the fetch goes on and the other callers get its value.
func TestFlightWaiterDeadline(t *testing.T) {
	var f Flight[int]
	release := make(chan struct{})
	fetch := func(ctx context.Context) (int, error) {
		select {
		case <-release:
			return 42, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	patient := make(chan Result[int], 1)
	go func() { patient <- f.Do(context.Background(), "k", fetch) }()
	time.Sleep(20 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := f.Do(ctx, "k", fetch)
	if !errors.Is(r.Err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("impatient waiter: %+v after %v", r, time.Since(start))
	}
	close(release)
	if got := <-patient; got.Err != nil || got.Value != 42 || !got.Leader {
		t.Errorf("patient caller: %+v", got)
	}
}

// TestFlightLeaderHangUp: the leader's own cancellation does not cancel
// the fetch the others wait on.
func TestFlightLeaderHangUp(t *testing.T) {
	var f Flight[int]
	release := make(chan struct{})
	fetch := func(ctx context.Context) (int, error) {
		select {
		case <-release:
			return 7, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	leaderCtx, hangUp := context.WithCancel(context.Background())
	leader := make(chan Result[int], 1)
	go func() { leader <- f.Do(leaderCtx, "k", fetch) }()
	time.Sleep(20 * time.Millisecond)
	waiter := make(chan Result[int], 1)
	go func() { waiter <- f.Do(context.Background(), "k", fetch) }()
	time.Sleep(20 * time.Millisecond)
	hangUp()
	if r := <-leader; !errors.Is(r.Err, context.Canceled) {
		t.Errorf("leader after hang-up: %+v", r)
	}
	close(release)
	if r := <-waiter; r.Err != nil || r.Value != 7 {
		t.Errorf("waiter: %+v", r)
	}
}

func TestFlightTimeout(t *testing.T) {
	f := Flight[int]{Timeout: 20 * time.Millisecond}
	r := f.Do(context.Background(), "k", func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	if !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("fetch past its timeout: %+v", r)
	}
}

func TestFlightErrorNotKept(t *testing.T) {
	var f Flight[int]
	boom := errors.New("boom")
	if r := f.Do(context.Background(), "k", func(context.Context) (int, error) { return 0, boom }); !errors.Is(r.Err, boom) {
		t.Fatalf("first: %+v", r)
	}
	// The failed flight is over; the next caller fetches anew.
	if r := f.Do(context.Background(), "k", func(context.Context) (int, error) { return 1, nil }); r.Err != nil || r.Value != 1 || !r.Leader {
		t.Errorf("second: %+v", r)
	}
}

func BenchmarkFlightUncontended(b *testing.B) {
	var f Flight[int]
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		f.Do(ctx, "k", func(context.Context) (int, error) { return 1, nil })
	}
}
