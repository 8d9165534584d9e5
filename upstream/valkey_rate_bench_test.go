package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/coalesce"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// BenchmarkValkeySetRate compares, in one run, the SET rate of the valkey
// sink behind a Batcher (what a batch route does, without its HTTP), of
// the sink called once a set, and of redis-benchmark -P 16 against the
// same Redis, at 64 and 256 concurrent writers; each reports sets/s:
//
//	go test -run '^$' -bench ValkeySetRate -benchtime 200000x ./upstream
func BenchmarkValkeySetRate(b *testing.B) {
	b.ReportAllocs()
	addr := servicetest.RedisAddr(b)
	prefix := servicetest.KeyPrefix(b)
	value := json.RawMessage(`{"views":500}`)
	for _, writers := range []int{64, 256} {
		b.Run(fmt.Sprintf("batched/%d", writers), func(b *testing.B) {
			c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true, PoolSize: 8})
			defer c.Close()
			batcher, err := coalesce.NewBatcher(coalesce.BatcherConfig{}, nil, NewValkeySink(c).Flush)
			if err != nil {
				b.Fatal(err)
			}
			defer batcher.Close(context.Background())
			setRate(b, writers, func(ctx context.Context, key string) error {
				res, err := batcher.Submit(ctx, ValkeyItem{Op: ValkeySet, Key: prefix + key, Value: value, TTL: 60})
				if err == nil {
					err = res.Err
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("single/%d", writers), func(b *testing.B) {
			c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true, PoolSize: writers})
			defer c.Close()
			sink := NewValkeySink(c)
			setRate(b, writers, func(ctx context.Context, key string) error {
				res, err := sink.Flush(ctx, []ValkeyItem{{Op: ValkeySet, Key: prefix + key, Value: value, TTL: 60}})
				if err == nil {
					err = res[0].Err
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("redis-benchmark-P16/%d", writers), func(b *testing.B) {
			rate, err := redisBenchmark(addr, writers, b.N, prefix)
			if err != nil {
				b.Skip(err) // .ci/run fails on a skip; the bench is not in CI
			}
			b.ReportMetric(rate, "sets/s")
		})
	}
}

// setRate runs b.N sets from writers goroutines and reports sets/s.
func setRate(b *testing.B, writers int, set func(ctx context.Context, key string) error) {
	b.SetParallelism((writers + 1) / 2) // × GOMAXPROCS (2 here)
	var n atomic.Int64
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := set(ctx, "rate:"+strconv.FormatInt(n.Add(1)%1000, 10)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
}

// redisBenchmark runs redis-benchmark -P 16 with the same SET (value and
// TTL) and returns its SET rate.
func redisBenchmark(addr string, clients, n int, prefix string) (float64, error) {
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("redis-benchmark", "-h", host, "-p", port, "-P", "16", "-c", strconv.Itoa(clients),
		"-n", strconv.Itoa(max(n, 100000)), "-r", "1000", "-q",
		"SET", prefix+"rb:__rand_int__", `{"views":500}`, "EX", "60").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %v: %s", err, out)
	}
	// The last line reads "SET ...: 1234567.89 requests per second, p50=...".
	sc := bufio.NewScanner(bytes.NewReader(bytes.ReplaceAll(out, []byte("\r"), []byte("\n"))))
	rate := 0.0
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), ": "); ok {
			if f, err := strconv.ParseFloat(strings.Fields(after)[0], 64); err == nil && strings.Contains(after, "requests per second") {
				rate = f
			}
		}
	}
	if rate == 0 {
		return 0, fmt.Errorf("no rate in redis-benchmark's output: %s", out)
	}
	return rate, nil
}
