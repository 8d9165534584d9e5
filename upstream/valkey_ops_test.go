package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/style-shepherd/sheepdog/internal/servicetest"
)

// TestValkeyOpsTTL: a set's ttl as the app reads it: falsy is SET,
// anything else must be a positive Valkey integer once String()ed.
func TestValkeyOpsTTL(t *testing.T) {
	for _, tt := range []struct {
		raw     string
		seconds int64
		refused bool
	}{
		{"", 0, false}, {"null", 0, false}, {"false", 0, false}, {"0", 0, false},
		{"-0", 0, false}, {"0.0", 0, false}, {`""`, 0, false}, {"1e-400", 0, false},
		{"60", 60, false}, {`"30"`, 30, false}, {"30.0", 30, false}, {"3e1", 30, false},
		{"-1", 0, true}, {`"0"`, 0, true}, {"1.5", 0, true}, {"true", 0, true},
		{"[1]", 0, true}, {"[]", 0, true}, {"{}", 0, true}, {`" 5"`, 0, true},
		{`"05"`, 0, true}, {"1e21", 0, true}, {"1e400", 0, true}, {"9223372036854775807", 0, true},
	} {
		seconds, refused := SetexTTL([]byte(tt.raw))
		if seconds != tt.seconds || refused != tt.refused {
			t.Errorf("ttl %s: %d %v, want %d %v", tt.raw, seconds, refused, tt.seconds, tt.refused)
		}
	}
}

// TestValkeyOpsKey: a key that is not a string is String()ed, as ioredis
// sends it; the answer echoes the key's own JSON.
func TestValkeyOpsKey(t *testing.T) {
	for _, tt := range []struct{ raw, key string }{
		{`"a b"`, "a b"}, {`"\u00e9"`, "é"}, {"12", "12"}, {"1.50", "1.5"}, {"1e21", "1e+21"},
		{"-0", "0"}, {"1e400", "Infinity"}, {"true", "true"}, {"null", ""},
		{`[1,null,"x",[2,3]]`, "1,,x,2,3"}, {`{"a":1}`, "[object Object]"},
	} {
		ops, err := ParseValkeyOps([]byte(`{"operations":[{"type":"get","key":` + tt.raw + `}]}`))
		if err != nil || len(ops.ops) != 1 {
			t.Fatalf("%s: %v", tt.raw, err)
		}
		if ops.ops[0].key != tt.key {
			t.Errorf("key %s sent as %q, want %q", tt.raw, ops.ops[0].key, tt.key)
		}
	}
	for _, body := range []string{`{}`, `{"operations":{}}`, `{"operations":null}`, `[]`, `"x"`, `{"operations":"[]"}`} {
		if _, err := ParseValkeyOps([]byte(body)); !errors.Is(err, ErrOperationsNotArray) {
			t.Errorf("%s: %v, want ErrOperationsNotArray", body, err)
		}
	}
}

// TestValkeySinkFlushOps: the operations of several requests go in one
// round trip, in order, and each request gets the app's answer; a get of
// a key Valkey cannot GET answers null, as the app's get swallows errors.
func TestValkeySinkFlushOps(t *testing.T) {
	c, trips := countedClient(t)
	p := servicetest.KeyPrefix(t)
	ctx := context.Background()
	if err := c.HSet(ctx, p+"hash", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	trips.reset()
	bodies := []string{
		fmt.Sprintf(`{"operations":[{"type":"set","key":"%[1]sa","value":{"n":1.0},"ttl":60},{"type":"get","key":"%[1]sa"},
			{"type":"set","key":"%[1]sbad","value":1,"ttl":"soon"},{"type":"get","key":"%[1]shash"},{"type":"x"}]}`, p),
		fmt.Sprintf(`{"operations":[{"type":"get","key":"%[1]sa"},{"type":"delete","key":"%[1]sa"},{"type":"get","key":"%[1]sa"}]}`, p),
	}
	want := []string{
		fmt.Sprintf(`{"success":true,"data":{"results":[{"success":true,"key":"%[1]sa"},{"success":true,"key":"%[1]sa","value":{"n":1}},`+
			`{"success":false,"key":"%[1]sbad","error":"Failed to set cache value"},{"success":true,"key":"%[1]shash","value":null}]},`, p),
		fmt.Sprintf(`{"success":true,"data":{"results":[{"success":true,"key":"%[1]sa","value":{"n":1}},{"success":true,"key":"%[1]sa"},`+
			`{"success":true,"key":"%[1]sa","value":null}]},`, p),
	}
	reqs := make([]*ValkeyOps, len(bodies))
	for i, b := range bodies {
		var err error
		if reqs[i], err = ParseValkeyOps([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := NewValkeySink(c).FlushOps(ctx, reqs)
	if err != nil {
		t.Fatalf("FlushOps: %v", err)
	}
	if p, n, w := trips.pipelines.Load(), trips.commands.Load(), trips.writes.Load(); p != 1 || n != 0 || w != 1 {
		t.Errorf("%d pipelines, %d single commands, %d writes: want one round trip", p, n, w)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i, r := range reqs {
		got := string(r.AppendAnswer(nil, res[i], `id "1"`, now))
		if tail := `"requestId":"id \"1\"","timestamp":"2026-11-25T12:00:00.000Z"}`; !strings.HasPrefix(got, want[i]) || !strings.HasSuffix(got, tail) {
			t.Errorf("request %d:\n got %s\nwant %s%s", i, got, want[i], tail)
		}
	}
}

// TestValkeySinkFlushOpsDown: an unreachable Valkey fails the batch with
// ErrUnavailable.
func TestValkeySinkFlushOpsDown(t *testing.T) {
	ops, err := ParseValkeyOps([]byte(`{"operations":[{"type":"get","key":"k"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DisableIdentity: true})
	defer c.Close()
	res, err := NewValkeySink(c).FlushOps(context.Background(), []*ValkeyOps{ops})
	if !errors.Is(err, ErrUnavailable) || res != nil {
		t.Errorf("FlushOps with Valkey down = %v, %v; want no results and ErrUnavailable", res, err)
	}
}
