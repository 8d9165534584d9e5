package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// ordersTable is a table shaped like the app's orders, in the test's own
// schema (servicetest.OrdersTable).
func ordersTable(t *testing.T, maxConns int32) (*pgxpool.Pool, string) {
	t.Helper()
	return servicetest.OrdersTable(t, maxConns)
}

var orderColumns = []string{"order_id", "user_id", "items", "total_amount"}

func order(id, user, items, total string) PostgresItem {
	return PostgresItem{Values: []any{id, user, json.RawMessage(items), total}}
}

// countOrders counts the rows whose order_id is one of ids.
func countOrders(t *testing.T, pool *pgxpool.Pool, table string, ids ...string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE order_id = ANY($1)`, ids).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var isoMillis = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// TestPostgresSinkInsertReturning: one multi-row INSERT, each item given
// its own returned row, in the shapes the app's answers use; what landed
// reads back with its JSON and NUMERIC intact.
func TestPostgresSinkInsertReturning(t *testing.T) {
	servicetest.CheckGoroutines(t)
	pool, table := ordersTable(t, 2)
	sink, err := NewPostgresSink(pool, table, orderColumns, []string{"order_id", "status", "total_amount", "items", "created_at"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []int{1, 3, 100} {
		t.Run(fmt.Sprintf("%d rows", n), func(t *testing.T) {
			items := make([]PostgresItem, n)
			ids := make([]string, n)
			for i := range items {
				// Ids out of sort order, so a result in another order shows.
				ids[i] = fmt.Sprintf("order_%d_%d", n, (i*37)%n)
				items[i] = order(ids[i], "user_1", fmt.Sprintf(`[ {"product_id": "p%d", "quantity": 2, "price": 14.995} ]`, i), fmt.Sprintf("%d.9", i))
			}
			start := time.Now()
			results, err := sink.Flush(ctx, items)
			if err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if len(results) != n {
				t.Fatalf("%d results for %d items", len(results), n)
			}
			for i, r := range results {
				got := r.Returned
				wantItems := fmt.Sprintf(`[{"price":14.995,"quantity":2,"product_id":"p%d"}]`, i)
				if got["order_id"] != ids[i] || got["status"] != "pending" || got["total_amount"] != fmt.Sprintf("%d.90", i) {
					t.Fatalf("result %d = %v, want order %s, pending, %d.90", i, got, ids[i], i)
				}
				if js, _ := got["items"].(json.RawMessage); string(js) != wantItems {
					t.Fatalf("result %d items = %s, want %s", i, got["items"], wantItems)
				}
				created, _ := got["created_at"].(string)
				at, err := time.Parse(time.RFC3339, created)
				if !isoMillis.MatchString(created) || err != nil || at.Before(start.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
					t.Fatalf("result %d created_at = %q, want an ISO time in UTC with milliseconds, about now", i, created)
				}
			}
			if got := countOrders(t, pool, table, ids...); got != n {
				t.Errorf("%d rows in the table, want %d", got, n)
			}
		})
	}
	// The values as PostgreSQL holds them: typed, not text.
	var product string
	var total float64
	err = pool.QueryRow(ctx, `SELECT items->0->>'product_id', total_amount::float8 FROM `+table+` WHERE order_id = 'order_3_1'`).Scan(&product, &total)
	if err != nil || product != "p1" || total != 1.9 {
		t.Errorf("stored row: product %q total %v, %v; want p1 and 1.9", product, total, err)
	}
}

// TestPostgresSinkCopy: without returning columns a batch is a COPY;
// text that COPY would read as escapes, NULL, JSON and NUMERIC land as
// they were given.
func TestPostgresSinkCopy(t *testing.T) {
	servicetest.CheckGoroutines(t)
	pool, table := ordersTable(t, 2)
	sink, err := NewPostgresSink(pool, table, orderColumns, nil)
	if err != nil {
		t.Fatal(err)
	}
	users := []string{"tab\there", "line\nbreak\r", `back\slash \N`, "plain", "é ☃"}
	items := make([]PostgresItem, 50)
	for i := range items {
		items[i] = order(fmt.Sprintf("copy_%d", i), users[i%len(users)], `{"n": 1.50, "tags": ["a"]}`, "29.99")
	}
	items[7].Values[1] = nil // user_id NULL
	results, err := sink.Flush(context.Background(), items)
	if err != nil || len(results) != len(items) {
		t.Fatalf("Flush = %d results, %v", len(results), err)
	}
	for i, r := range results {
		if r.Returned != nil {
			t.Fatalf("result %d returned %v, want nothing", i, r.Returned)
		}
	}
	rows, err := pool.Query(context.Background(), `SELECT order_id, user_id, items::text, total_amount::text, status FROM `+table+` ORDER BY order_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, items, total, status string
		var user *string
		if err := rows.Scan(&id, &user, &items, &total, &status); err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(id, "copy_%d", &i)
		want := &users[i%len(users)]
		if i == 7 {
			want = nil
		}
		if (user == nil) != (want == nil) || (user != nil && *user != *want) || items != `{"n": 1.50, "tags": ["a"]}` || total != "29.99" || status != "pending" {
			t.Errorf("row %s: user %v items %s total %s status %s", id, user, items, total, status)
		}
		n++
	}
	if rows.Err() != nil || n != len(items) {
		t.Fatalf("%d rows read (%v), want %d", n, rows.Err(), len(items))
	}
}

// bothWriteModes runs f for the sink writing with INSERT … RETURNING and
// for the sink writing with COPY, each as a subtest named after its mode.
func bothWriteModes(t *testing.T, pool *pgxpool.Pool, table string, f func(t *testing.T, name string, sink *PostgresSink)) {
	t.Helper()
	for _, returning := range [][]string{{"order_id"}, nil} {
		name := "insert returning"
		if returning == nil {
			name = "copy"
		}
		t.Run(name, func(t *testing.T) {
			sink, err := NewPostgresSink(pool, table, orderColumns, returning)
			if err != nil {
				t.Fatal(err)
			}
			f(t, name, sink)
		})
	}
}

// TestPostgresSinkConstraintFailsBatch: a duplicate primary key fails the
// whole batch, with PostgreSQL's error and none of its rows written, so
// the batcher can split it; the same rows without the bad one land.
func TestPostgresSinkConstraintFailsBatch(t *testing.T) {
	pool, table := ordersTable(t, 2)
	bothWriteModes(t, pool, table, func(t *testing.T, name string, sink *PostgresSink) {
		a, b := order(name+"_a", "u", `[]`, "1"), order(name+"_b", "u", `[]`, "2")
		tests := []struct {
			name  string
			items []PostgresItem
			code  string // the PgError's code, "" for success
			rows  int    // rows of a and b in the table afterwards
		}{
			{"duplicate within the batch", []PostgresItem{a, b, a}, "23505", 0},
			{"without the bad row", []PostgresItem{a}, "", 1},
			{"duplicate of a stored row", []PostgresItem{b, a}, "23505", 1},
			{"not a number", []PostgresItem{b, order(name+"_c", "u", `[]`, "cheap")}, "22P02", 1},
			{"not JSON", []PostgresItem{b, order(name+"_c", "u", `{oops`, "1")}, "22P02", 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				results, err := sink.Flush(context.Background(), tt.items)
				var pgErr *pgconn.PgError
				if tt.code == "" && (err != nil || len(results) != len(tt.items)) {
					t.Fatalf("Flush = %d results, %v", len(results), err)
				}
				if tt.code != "" && (!errors.As(err, &pgErr) || pgErr.Code != tt.code || errors.Is(err, ErrUnavailable) || results != nil) {
					t.Fatalf("Flush = %v, %v; want PostgreSQL's %s for the batch", results, err, tt.code)
				}
				if got := countOrders(t, pool, table, name+"_a", name+"_b", name+"_c"); got != tt.rows {
					t.Fatalf("%d rows in the table, want %d", got, tt.rows)
				}
			})
		}
	})
}

// TestPostgresSinkRowsSkipped: a trigger that skips a row makes the
// statement commit fewer rows than items. Rows were written, so the
// batch fails as ErrAnswerUnreadable, which is neither retried nor split.
func TestPostgresSinkRowsSkipped(t *testing.T) {
	pool, table := ordersTable(t, 2)
	ctx := context.Background()
	fn := table + "_skip"
	for _, q := range []string{
		`CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN IF NEW.user_id = 'skip' THEN RETURN NULL; END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER skip_rows BEFORE INSERT ON ` + table + ` FOR EACH ROW EXECUTE FUNCTION ` + fn + `()`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	bothWriteModes(t, pool, table, func(t *testing.T, name string, sink *PostgresSink) {
		items := []PostgresItem{order(name+"_a", "u", `[]`, "1"), order(name+"_b", "skip", `[]`, "2")}
		results, err := sink.Flush(ctx, items)
		if !errors.Is(err, ErrAnswerUnreadable) || results != nil {
			t.Fatalf("Flush = %v, %v; want ErrAnswerUnreadable", results, err)
		}
		if got := countOrders(t, pool, table, name+"_a", name+"_b"); got != 1 {
			t.Errorf("%d rows in the table, want 1", got)
		}
	})
}

// TestPostgresSinkPoolStats: the pool's counts in the app's shape, and a
// flush waiting for a connection counted as waiting.
func TestPostgresSinkPoolStats(t *testing.T) {
	servicetest.CheckGoroutines(t)
	pool, table := ordersTable(t, 1)
	sink, err := NewPostgresSink(pool, table, orderColumns, []string{"order_id"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := sink.Flush(ctx, []PostgresItem{order("s1", "u", `[]`, "1")}); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(sink.PoolStats())
	if string(js) != `{"totalCount":1,"idleCount":1,"waitingCount":0}` {
		t.Errorf("idle pool: %s", js)
	}

	held, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var flushErr error
	wg.Go(func() { _, flushErr = sink.Flush(ctx, []PostgresItem{order("s2", "u", `[]`, "1")}) })
	deadline := time.Now().Add(5 * time.Second)
	for sink.PoolStats().WaitingCount != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := sink.PoolStats(); st != (PoolStats{TotalCount: 1, IdleCount: 0, WaitingCount: 1}) {
		t.Errorf("with the only connection held: %+v, want 1 total, 0 idle, 1 waiting", st)
	}
	held.Release()
	wg.Wait()
	if flushErr != nil || sink.PoolStats().WaitingCount != 0 {
		t.Errorf("after the release: %v, %+v", flushErr, sink.PoolStats())
	}
}

// lazyPool is a pool for dsn; pgxpool dials only when asked for a
// connection.
func lazyPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestPostgresSinkDown: a database that cannot be reached fails the batch
// with ErrUnavailable (the proxy's 503); the caller's own cancellation is
// not that.
func TestPostgresSinkDown(t *testing.T) {
	servicetest.CheckGoroutines(t)
	pool := lazyPool(t, "postgres://postgres@"+servicetest.FreeAddr(t)+"/test?sslmode=disable&connect_timeout=2")
	sink, err := NewPostgresSink(pool, "orders", orderColumns, []string{"order_id"})
	if err != nil {
		t.Fatal(err)
	}
	items := []PostgresItem{order("o1", "u", `[]`, "1")}
	if _, err := sink.Flush(context.Background(), items); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Flush to a closed port: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sink.Flush(ctx, items); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("Flush on a cancelled context: %v, want context.Canceled only", err)
	}
}

// TestPostgresSinkRefusesBadItems: items the sink cannot send fail the
// batch before any connection is asked for.
func TestPostgresSinkRefusesBadItems(t *testing.T) {
	pool := lazyPool(t, "postgres://postgres@"+servicetest.FreeAddr(t)+"/test?sslmode=disable")
	sink, err := NewPostgresSink(pool, "orders", orderColumns, []string{"order_id"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		items []PostgresItem
		want  string
	}{
		{"too few values", []PostgresItem{{Values: []any{"o1", "u"}}}, "item 0 has 2 values for 4 columns"},
		{"a number, not text", []PostgresItem{order("o1", "u", `[]`, "1"), {Values: []any{"o2", "u", nil, 29.99}}},
			"item 1 column total_amount: value of type float64"},
		{"over the parameter limit", make([]PostgresItem, 20000), "80000 values in one batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sink.Flush(context.Background(), tt.items)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("Flush: %v, want an error saying %q", err, tt.want)
			}
		})
	}
	if results, err := sink.Flush(context.Background(), nil); err != nil || len(results) != 0 {
		t.Errorf("empty batch: %v, %v", results, err)
	}
}

func TestNewPostgresSinkChecksNames(t *testing.T) {
	pool := lazyPool(t, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	tests := []struct {
		name      string
		table     string
		columns   []string
		returning []string
		wantErr   string
		wantSQL   string // the INSERT head, then the tail, or the COPY
	}{
		{name: "returning", table: "orders", columns: []string{"order_id", "user"}, returning: []string{"order_id"},
			wantSQL: `INSERT INTO "orders" ("order_id","user") VALUES | RETURNING "order_id"`},
		{name: "copy in a schema", table: "shop.Orders", columns: []string{"a"},
			wantSQL: `COPY "shop"."Orders" ("a") FROM STDIN`},
		{name: "injection in the table", table: `orders"; DROP TABLE x; --`, columns: []string{"a"}, wantErr: "not a plain identifier"},
		{name: "three-part table", table: "a.b.c", columns: []string{"a"}, wantErr: "not a plain identifier"},
		{name: "empty table", table: "", columns: []string{"a"}, wantErr: "not a plain identifier"},
		{name: "no columns", table: "t", wantErr: "no columns"},
		{name: "column with a space", table: "t", columns: []string{"total amount"}, wantErr: "not a plain identifier"},
		{name: "column twice", table: "t", columns: []string{"a", "a"}, wantErr: "named twice"},
		{name: "bad returning", table: "t", columns: []string{"a"}, returning: []string{"*"}, wantErr: "not a plain identifier"},
		{name: "name too long", table: strings.Repeat("t", 64), columns: []string{"a"}, wantErr: "not a plain identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewPostgresSink(pool, tt.table, tt.columns, tt.returning)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := s.copy
			if len(tt.returning) > 0 {
				got = s.insert + "|" + s.tail
			}
			if got != tt.wantSQL {
				t.Errorf("SQL %s, want %s", got, tt.wantSQL)
			}
		})
	}
	if _, err := NewPostgresSink(nil, "t", []string{"a"}, nil); err == nil {
		t.Error("a nil pool was accepted")
	}
	s, _ := NewPostgresSink(pool, "orders", []string{"a"}, nil)
	if got := s.String(); got != "postgres 127.0.0.1:5432/test orders" {
		t.Errorf("String() = %q", got)
	}
}
