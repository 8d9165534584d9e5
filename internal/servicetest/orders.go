package servicetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
)

// OrdersTable connects to the test PostgreSQL (a pool of at most maxConns,
// 0 for pgx's default) and creates, in a schema of the test's own, a table
// shaped like the app's orders. It returns the pool and the table's
// qualified name; the schema is dropped and the pool closed when the test
// ends.
func OrdersTable(t testing.TB, maxConns int32) (*pgxpool.Pool, string) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	schema := "sheepdog_test_" + hex.EncodeToString(r[:])
	_, err = pool.Exec(ctx, `CREATE SCHEMA `+schema+`; `+shepherd.OrdersTableSQL(schema+".orders"))
	if err != nil {
		pool.Close()
		t.Fatalf("create the test's schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		pool.Close()
	})
	return pool, schema + ".orders"
}
