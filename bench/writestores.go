package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
)

// storeTimeout bounds each setup and cleanup call to PostgreSQL and Valkey.
const storeTimeout = 10 * time.Second

// createOrdersTable creates schema.orders, shaped like the app's orders
// (as internal/servicetest.OrdersTable makes it), for the postgres sink.
func createOrdersTable(ctx context.Context, dsn, schema string) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `CREATE SCHEMA `+schema+`; `+shepherd.OrdersTableSQL(schema+".orders"))
	if err != nil {
		return fmt.Errorf("postgres: create schema %s: %w", schema, err)
	}
	return nil
}

// dropSchema drops the run's schema and every row written into it.
func dropSchema(dsn, schema string) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: drop schema %s: %w", schema, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
		return fmt.Errorf("postgres: drop schema %s: %w", schema, err)
	}
	return nil
}

// countRows is how many rows schema.orders holds.
func countRows(ctx context.Context, dsn, schema string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.orders`).Scan(&n)
	return n, err
}

// deleteKeys deletes every Valkey key that starts with prefix+":".
func deleteKeys(addr, prefix string) (deleted int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	flush := func() {
		if len(batch) > 0 {
			n, e := c.Del(ctx, batch...).Result()
			deleted += n
			err = errors.Join(err, e)
			batch = batch[:0]
		}
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 500 {
			flush()
		}
	}
	flush()
	if e := iter.Err(); e != nil {
		err = errors.Join(err, e)
	}
	if err != nil {
		return deleted, fmt.Errorf("valkey %s: delete %s:*: %w", addr, prefix, err)
	}
	return deleted, nil
}

// redactDSN is a DSN fit for the report: any password replaced by "xxxxx".
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(the -pg-dsn given)"
	}
	return u.Redacted()
}
