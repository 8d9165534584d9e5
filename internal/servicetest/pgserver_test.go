package servicetest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPostgresServerRestart: a committed row outlives a restart, and the
// server refuses connections while it is down.
func TestPostgresServerRestart(t *testing.T) {
	s := StartPostgresServer(t)
	ctx := context.Background()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, s.DSN)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(`CREATE TABLE t (n int); INSERT INTO t VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := exec(`SELECT 1`); err == nil {
		t.Fatal("a stopped server took a connection")
	}
	s.Start()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT n FROM t`).Scan(&n); err != nil || n != 7 {
		t.Errorf("after the restart: n = %d, %v; want 7", n, err)
	}
}
