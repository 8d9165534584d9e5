package cachelayer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// publishes reads how many PUBLISH commands the server has run.
func publishes(t *testing.T, addr string) int {
	t.Helper()
	info := rawClient(t, addr).Info(context.Background(), "commandstats").Val()
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_publish:calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// TestInvalidationsGoTogether: 200 writers invalidating at once share
// rounds: far fewer publishes than calls, and yet every call returns
// only once its tag is raised in L2 and here, and every other replica
// voids what it held under it.
func TestInvalidationsGoTogether(t *testing.T) {
	srv := servicetest.StartRedisServer(t)
	const prefix = "sheepdog-rounds:"
	a := newReplica(t, srv.Addr, prefix, 1<<20)
	b := newReplica(t, srv.Addr, prefix, 1<<20)
	ctx := context.Background()
	const n = 200
	stored := time.Now().UnixNano()
	for i := range n {
		tag := fmt.Sprintf("t%d", i)
		b.Store(Key{byte(i), 1}, fetched("/p", stored, time.Minute, []string{tag}, b.VersionsFor([]string{tag}, nil)))
	}
	b.WaitForTest()
	before := publishes(t, srv.Addr)
	raw := rawClient(t, srv.Addr)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tag := fmt.Sprintf("t%d", i)
			if err := a.Invalidate(ctx, tag, "all"); err != nil {
				errs <- err
				return
			}
			// Returned: the tag is raised in L2 and here.
			if v, err := raw.Get(ctx, prefix+tagInfix+tag).Uint64(); err != nil || v == 0 {
				errs <- fmt.Errorf("%s in L2 after Invalidate returned: %d, %v", tag, v, err)
			}
			if v := a.VersionsFor([]string{tag}, nil); v[0] == 0 {
				errs <- fmt.Errorf("%s not raised here after Invalidate returned", tag)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sent := publishes(t, srv.Addr) - before
	if sent < 1 || sent > n/4 {
		t.Errorf("%d invalidations made %d publishes; want them gathered into rounds", n, sent)
	}
	eventually(t, "every entry of b voided", func() bool {
		for i := range n {
			if e, _, _ := b.Lookup(ctx, Key{byte(i), 1}, []string{fmt.Sprintf("t%d", i)}, nil); e != nil {
				return false
			}
		}
		return true
	})
	t.Logf("%d invalidations, %d publishes", n, sent)
}
