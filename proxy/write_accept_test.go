package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// The write path at the scale of its acceptance points: thousands of
// concurrent writers against the real Valkey, the real PostgreSQL and
// the simulated app.

// orderAnswer is a create-order answer: {success, data: {…, orderId}}.
type orderAnswer struct {
	Success bool `json:"success"`
	Data    struct {
		OrderID string `json:"orderId"`
		UserID  string `json:"user_id"`
	} `json:"data"`
}

// TestWriteStoreMemoryAtScale: 1,000 concurrent store-memory calls
// become at most 50 calls of the app's batch endpoint and no single
// store, and every caller gets an id of its own.
func TestWriteStoreMemoryAtScale(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_items: 100, max_wait: 2ms"})
	r.app.SetLatency("memory.batch", 10*time.Millisecond)
	r.c.MaxConns = 1000
	const n = 1000
	var mu sync.Mutex
	ids := map[string]bool{}
	var failures []string
	burst(n, func(i int) {
		status, answer, _ := r.post(t, "/api/raindrop/store-memory",
			fmt.Sprintf(`{"userId":"scale_user_%d","text":"note %d"}`, i%10, i))
		var res struct {
			Success bool   `json:"success"`
			ID      string `json:"id"`
		}
		err := json.Unmarshal(answer, &res)
		mu.Lock()
		defer mu.Unlock()
		if status != 200 || err != nil || !res.Success || res.ID == "" {
			failures = append(failures, fmt.Sprintf("%d %s", status, answer))
			return
		}
		ids[res.ID] = true
	})
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	single, batches := count(r.app, "memory.store"), count(r.app, "memory.batch")
	if len(ids) != n || single != 0 || batches > 50 {
		t.Errorf("%d distinct ids, %d single stores, %d batch calls; want %d, 0, at most 50", len(ids), single, batches, n)
	}
	t.Logf("%d stores: %d batch calls, %d single calls, %d distinct ids", n, batches, single, len(ids))
}

// TestWriteOrdersAtScale: 2,000 concurrent orders, one of which breaks a
// CHECK constraint. That one caller gets a 422; the other 1,999 rows land
// once each, under the ids their callers were given.
func TestWriteOrdersAtScale(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	ctx := context.Background()
	if _, err := r.pool.Exec(ctx, `ALTER TABLE `+r.table+` ADD CHECK (total_amount >= 0)`); err != nil {
		t.Fatal(err)
	}
	r.c.MaxConns = 2000
	const n, bad = 2000, 777
	var mu sync.Mutex
	statuses := map[int]int{}
	acked := map[string]string{} // orderId → user_id
	burst(n, func(i int) {
		total := "10.5"
		if i == bad {
			total = "-1"
		}
		status, answer, _ := r.post(t, "/api/vultr/postgres/orders",
			fmt.Sprintf(`{"user_id":"u_%d","items":[{"product_id":"p%d"}],"total_amount":%s}`, i, i, total))
		var a orderAnswer
		json.Unmarshal(answer, &a)
		mu.Lock()
		defer mu.Unlock()
		statuses[status]++
		if status == 200 && a.Success && a.Data.OrderID != "" {
			if _, dup := acked[a.Data.OrderID]; dup {
				t.Errorf("order id %s given twice", a.Data.OrderID)
			}
			acked[a.Data.OrderID] = a.Data.UserID
		}
		if (i == bad) != (status == 422) {
			t.Errorf("order %d: %d %s", i, status, answer)
		}
	})
	if statuses[200] != n-1 || statuses[422] != 1 || len(acked) != n-1 {
		t.Errorf("statuses %v, %d distinct ids; want %d of 200 with distinct ids and one 422", statuses, len(acked), n-1)
	}
	rows := tableOrders(t, r.pool, r.table)
	checkAcked(t, rows, acked)
	if len(rows) != n-1 {
		t.Errorf("%d rows, want %d", len(rows), n-1)
	}
	if _, in := rows[fmt.Sprintf("u_%d", bad)]; in {
		t.Errorf("the refused order is in the table")
	}
	s := r.batchStats(t, "create-order")
	t.Logf("%d orders: %v; %d rows; %d batches (mean %.1f), %d failures split", n, statuses, len(rows), s.Batches, s.MeanBatch, s.Failures)
}

// tableOrders reads every row as user_id → the order ids stored for it.
func tableOrders(t *testing.T, pool *pgxpool.Pool, table string) map[string][]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT user_id, order_id FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byUser := map[string][]string{}
	for rows.Next() {
		var user, id string
		if err := rows.Scan(&user, &id); err != nil {
			t.Fatal(err)
		}
		byUser[user] = append(byUser[user], id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return byUser
}

// checkAcked fails the test unless every acknowledged order is in rows
// under its own id, and no request (each has a user of its own) was
// written twice.
func checkAcked(t *testing.T, rows map[string][]string, acked map[string]string) {
	t.Helper()
	for user, ids := range rows {
		if len(ids) > 1 {
			t.Errorf("request %s written %d times: %v", user, len(ids), ids)
		}
	}
	missing := 0
	for id, user := range acked {
		if !slices.Contains(rows[user], id) {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged orders are not in the table", missing)
	}
}

// TestWriteValkeySetsAtScale: 2,000 concurrent cache sets land, each key
// with its TTL, in at most 200 pipelined round trips.
func TestWriteValkeySetsAtScale(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	r.c.MaxConns = 2000
	const n = 2000
	var failed atomic.Int64
	burst(n, func(i int) {
		status, answer, _ := r.post(t, fmt.Sprintf("/api/vultr/valkey/cache/s%d", i),
			fmt.Sprintf(`{"value":{"n":%d},"ttl":120}`, i))
		if status != 200 || !isAppSuccess(answer) {
			if failed.Add(1) == 1 {
				t.Errorf("set %d: %d %s", i, status, answer)
			}
		}
	})
	ctx := context.Background()
	pipe := r.redis.Pipeline()
	values := make([]interface{ Val() string }, n)
	ttls := make([]interface{ Val() time.Duration }, n)
	for i := range n {
		key := fmt.Sprintf("%ss%d", r.prefix, i)
		values[i], ttls[i] = pipe.Get(ctx, key), pipe.TTL(ctx, key)
	}
	pipe.Exec(ctx)
	bad := 0
	for i := range n {
		if values[i].Val() != fmt.Sprintf(`{"n":%d}`, i) || ttls[i].Val() <= 100*time.Second || ttls[i].Val() > 120*time.Second {
			if bad++; bad <= 3 {
				t.Errorf("s%d = %q, TTL %v; want {\"n\":%d} with TTL 120s", i, values[i].Val(), ttls[i].Val(), i)
			}
		}
	}
	s := r.batchStats(t, "cache-set")
	if failed.Load() != 0 || bad != 0 || s.Items != n || s.Batches > 200 {
		t.Errorf("%d failed answers, %d bad keys, %d items in %d round trips; want 0, 0, %d in at most 200",
			failed.Load(), bad, s.Items, s.Batches, n)
	}
	t.Logf("%d sets: %d round trips (mean %.1f), %d bad keys", n, s.Batches, s.MeanBatch, bad)
}

// TestWriteOrdersThroughPostgresRestart: PostgreSQL is restarted in the
// middle of a stream of orders. Every order answered 200 is in the table
// once; every other was answered 503; and writes land again once the
// server is back.
func TestWriteOrdersThroughPostgresRestart(t *testing.T) {
	pg := servicetest.StartPostgresServer(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, shepherd.OrdersTableSQL("orders")); err != nil {
		t.Fatal(err)
	}
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms", dsn: pg.DSN, table: "orders"})

	const writers = 50
	var (
		mu       sync.Mutex
		acked    = map[string]string{}
		statuses = map[int]int{}
		failed   []string // users of writes answered 503
		odd      []string
		seq      atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	var afterRestart atomic.Int64 // 200s once the server is back
	var restarted atomic.Bool
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				user := fmt.Sprintf("c_%d", seq.Add(1))
				status, answer, h := r.post(t, "/api/vultr/postgres/orders",
					fmt.Sprintf(`{"user_id":"%s","items":[],"total_amount":1}`, user))
				var a orderAnswer
				json.Unmarshal(answer, &a)
				mu.Lock()
				statuses[status]++
				switch {
				case status == 200 && a.Data.OrderID != "":
					acked[a.Data.OrderID] = user
					if restarted.Load() {
						afterRestart.Add(1)
					}
				case status == 503 && string(h.Peek("Retry-After")) != "":
					failed = append(failed, user)
				default:
					odd = append(odd, fmt.Sprintf("%d %s", status, answer))
				}
				mu.Unlock()
				if status != 200 {
					time.Sleep(5 * time.Millisecond) // as a client would back off
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	pg.Restart(500 * time.Millisecond)
	restarted.Store(true)
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	rows := tableOrders(t, pool, "orders")
	checkAcked(t, rows, acked)
	for i, o := range odd {
		if i < 5 {
			t.Errorf("an answer neither 200 nor 503 with Retry-After: %s", o)
		}
	}
	inDoubt := 0
	for _, user := range failed {
		if len(rows[user]) > 0 {
			inDoubt++
		}
	}
	if len(failed) == 0 || afterRestart.Load() == 0 {
		t.Errorf("%d writes failed, %d landed after the restart: the restart was not seen, or writes never came back",
			len(failed), afterRestart.Load())
	}
	if inDoubt > 0 {
		t.Errorf("%d writes answered 503 are in the table", inDoubt)
	}
	t.Logf("statuses %v: %d acknowledged, all present once; %d answered 503; %d landed after the restart; %d rows",
		statuses, len(acked), len(failed), afterRestart.Load(), len(rows))
}

// propagationConfig is a replica: store-memory batched to the app,
// search-memory cached, invalidations shared through Valkey.
func propagationConfig(t *testing.T, origin, l2 string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("replica.yaml", []byte(fmt.Sprintf(`
upstream: {url: "http://%s", timeout: 2s}
cache: {l2: {%s}}
routes:
  - name: store-memory
    match: {method: POST, path: /api/raindrop/store-memory}
    batch: {sink: http, url: /api/raindrop/batch-store-memory, wrap: memories, split: results, max_wait: 2ms}
    invalidates: ["memory:{body.userId=demo_user}"]
  - name: search-memory
    match: {method: POST, path: /api/raindrop/search-memory}
    cache: {ttl: 2m, key: {body: [userId=demo_user, q=, topK=20]}, tags: ["memory:{body.userId=demo_user}"]}
`, origin, l2)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestWritePropagatesToReplicas: replica A caches a search; a store goes
// through replica B; A's next read shows the new memory. Over 200 trials,
// the time from B's answer to A showing the memory has a p99 under 50 ms.
func TestWritePropagatesToReplicas(t *testing.T) {
	redisAddr := servicetest.RedisAddr(t)
	prefix := servicetest.KeyPrefix(t)
	_, origin := startOrigin(t)
	pa, addrA, _ := startProxy(t, propagationConfig(t, origin, l2Block(redisAddr, prefix)))
	pb, addrB, _ := startProxy(t, propagationConfig(t, origin, l2Block(redisAddr, prefix)))
	ca, cb := rawClient(addrA), rawClient(addrB)
	post := func(c *fasthttp.HostClient, path, body string) (string, string) {
		resp := get(t, c, "POST", path, "Content-Type", "application/json", "body", body)
		defer fasthttp.ReleaseResponse(resp)
		if resp.StatusCode() != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode(), resp.Body())
		}
		return string(resp.Header.Peek("X-Cache")), string(resp.Body())
	}

	const trials = 200
	lags := make([]time.Duration, 0, trials)
	firstReadFresh := 0
	for i := range trials {
		search := fmt.Sprintf(`{"userId":"replica_%d","q":""}`, i)
		post(ca, "/api/raindrop/search-memory", search)
		if x, _ := post(ca, "/api/raindrop/search-memory", search); x != "HIT" {
			t.Fatalf("trial %d: A's second read is %s, want HIT", i, x)
		}
		text := fmt.Sprintf("memory of trial %d", i)
		post(cb, "/api/raindrop/store-memory", fmt.Sprintf(`{"userId":"replica_%d","text":"%s"}`, i, text))
		stored := time.Now()
		for reads := 1; ; reads++ {
			_, body := post(ca, "/api/raindrop/search-memory", search)
			if strings.Contains(body, text) {
				lags = append(lags, time.Since(stored))
				if reads == 1 {
					firstReadFresh++
				}
				break
			}
			if time.Since(stored) > 2*time.Second {
				// What each replica's cache did, to tell a lost publish
				// from a lost delivery or a breaker that refused it.
				a, b := pa.cache.Stats(), pb.cache.Stats()
				t.Fatalf("trial %d: A does not show B's write after 2s\nA: %+v\nB: %+v\nB's invalidations that failed: %d",
					i, a, b, pb.invFailed.Load())
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	slices.Sort(lags)
	p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100-1]
	if p99 >= 50*time.Millisecond {
		t.Errorf("propagation p99 %v over %d trials, want under 50ms", p99, trials)
	}
	t.Logf("%d trials: propagation p50 %v, p99 %v, max %v; A's first read after B's answer was already fresh in %d",
		trials, p50, p99, lags[len(lags)-1], firstReadFresh)
}

// startExample runs the shipped configs/sheepdog.yaml in front of the
// simulated app, with a Valkey of its own and the tests' PostgreSQL.
func startExample(t *testing.T) (app *shepherd.App, addr string) {
	t.Helper()
	app, origin := startOrigin(t)
	valkey := servicetest.StartRedisServer(t)
	src, err := configs.ExampleFile("sheepdog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"SHEEPDOG_UPSTREAM": "http://" + origin,
		"VALKEY_ADDR":       valkey.Addr,
		"DATABASE_URL":      servicetest.PostgresDSN(t),
	}
	cfg, err := configs.ParseWithEnv("sheepdog.yaml", src, func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ = startProxy(t, cfg)
	return app, addr
}

// TestExampleEmptyUserIDIsTheDefaultUser: the app reads ?userId= (empty) as
// demo_user, as it reads no userId (req.query.userId || 'demo_user'), so a
// write for demo_user must drop that read too. Its tag read the empty
// value as written (memory:), which no write drops, and the stats stayed
// stale for their 5 minutes.
func TestExampleEmptyUserIDIsTheDefaultUser(t *testing.T) {
	_, addr := startExample(t)
	c := rawClient(addr)
	const stats = "/api/raindrop/memory-stats?userId="
	xcache := func() string {
		resp := get(t, c, "GET", stats)
		defer fasthttp.ReleaseResponse(resp)
		return string(resp.Header.Peek("X-Cache"))
	}
	xcache()
	if x := xcache(); x != "HIT" {
		t.Fatalf("stats read twice: %s, want HIT", x)
	}
	resp := get(t, c, "POST", "/api/raindrop/store-memory", "Content-Type", "application/json", "body", `{"text":"a new memory"}`)
	if resp.StatusCode() != 200 {
		t.Fatalf("store-memory: %d %s", resp.StatusCode(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)
	if x := xcache(); x == "HIT" {
		t.Errorf("%s after demo_user stored a memory: HIT, the stats from before it", stats)
	}
}

// TestExamplePostgresBatchDropsReads runs the shipped configs/sheepdog.yaml:
// POST /api/vultr/postgres/batch (arbitrary SQL) goes to the app, and
// every Postgres-backed read cached before it is fetched again after it.
func TestExamplePostgresBatchDropsReads(t *testing.T) {
	app, addr := startExample(t)
	c := rawClient(addr)
	reads := []string{
		"/api/vultr/postgres/products?category=tops",
		"/api/vultr/postgres/users/user_1/profile",
		"/api/vultr/postgres/users/user_1/orders",
		"/api/vultr/postgres/returns?userId=user_1",
	}
	xcache := func(path string) string {
		resp := get(t, c, "GET", path)
		defer fasthttp.ReleaseResponse(resp)
		return string(resp.Header.Peek("X-Cache"))
	}
	for _, path := range reads {
		xcache(path)
		if x := xcache(path); x != "HIT" {
			t.Fatalf("%s read twice: %s, want HIT", path, x)
		}
	}
	resp := get(t, c, "POST", "/api/vultr/postgres/batch", "Content-Type", "application/json",
		"body", `{"queries":[{"text":"UPDATE catalog SET stock = stock - 1 WHERE id = $1","params":[1]}]}`)
	if resp.StatusCode() != 200 || count(app, "postgres.batch") != 1 {
		t.Fatalf("postgres batch: %d %s, the app saw %d", resp.StatusCode(), resp.Body(), count(app, "postgres.batch"))
	}
	fasthttp.ReleaseResponse(resp)
	for _, path := range reads {
		if x := xcache(path); x != "MISS" {
			t.Errorf("%s after /postgres/batch: %s, want MISS", path, x)
		}
	}
}
