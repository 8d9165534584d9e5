// Package servicetest finds the services integration tests need (Redis or
// Valkey, PostgreSQL), starts private redis-servers for fault tests, and
// checks that a test leaves no goroutine behind.
//
// A service that cannot be reached skips the test with a message, unless
// SHEEPDOG_REQUIRE_SERVICES=1 (as in CI), where it fails the test.
package servicetest

import (
	"os"
	"testing"
)

// Environment variables that point tests at their services.
const (
	EnvRedis    = "SHEEPDOG_TEST_REDIS"
	EnvPostgres = "SHEEPDOG_TEST_POSTGRES"
	EnvRequire  = "SHEEPDOG_REQUIRE_SERVICES"
)

// The addresses used when the environment names none: the project's
// machines run both services on loopback.
const (
	DefaultRedisAddr   = "127.0.0.1:6379"
	DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// unavailable skips t, or fails it when services are required.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf(format+" ("+EnvRequire+"=1)", args...)
	}
	t.Skipf(format, args...)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
