package servicetest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// PostgresDSN returns the DSN of the shared test PostgreSQL
// (SHEEPDOG_TEST_POSTGRES, default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable) after checking
// that a PostgreSQL server answers at its address. The check is the
// protocol's SSLRequest, answered by one byte, so it needs no driver and
// no login; whether the DSN's user and database work is the test's to find.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := envOr(EnvPostgres, DefaultPostgresDSN)
	addr, err := postgresAddr(dsn)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgres, err)
	}
	if err := probePostgres(addr); err != nil {
		unavailable(t, "postgres at %s: %v", addr, err)
	}
	return dsn
}

// postgresAddr finds host:port in a URL DSN (postgres://…) or a
// keyword/value one (host=… port=…), with libpq's defaults.
func postgresAddr(dsn string) (string, error) {
	host, port := "127.0.0.1", "5432"
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse dsn: %w", err)
		}
		if h := u.Hostname(); h != "" {
			host = h
		}
		if p := u.Port(); p != "" {
			port = p
		}
		return net.JoinHostPort(host, port), nil
	}
	for _, field := range strings.Fields(dsn) {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "host":
			host = v
		case "port":
			port = v
		}
	}
	if strings.HasPrefix(host, "/") {
		return "", fmt.Errorf("unix socket host %q: use a TCP address", host)
	}
	return net.JoinHostPort(host, port), nil
}

// sslRequestCode asks a PostgreSQL server whether it speaks TLS; it
// answers 'S' or 'N' before any login.
const sslRequestCode = 80877103

func probePostgres(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(probeTimeout))
	var msg [8]byte
	binary.BigEndian.PutUint32(msg[0:4], 8)
	binary.BigEndian.PutUint32(msg[4:8], sslRequestCode)
	if _, err := conn.Write(msg[:]); err != nil {
		return err
	}
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		return fmt.Errorf("no answer to SSLRequest: %w", err)
	}
	if answer[0] != 'S' && answer[0] != 'N' {
		return fmt.Errorf("answer %q to SSLRequest: not a PostgreSQL server", answer[0])
	}
	return nil
}
