package servicetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// probeTimeout bounds each check that a service answers.
const probeTimeout = 2 * time.Second

// RedisAddr returns the address of the shared test Redis (SHEEPDOG_TEST_REDIS,
// default 127.0.0.1:6379) after checking that it answers PING.
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := envOr(EnvRedis, DefaultRedisAddr)
	if err := pingRedis(addr); err != nil {
		unavailable(t, "redis at %s: %v", addr, err)
	}
	return addr
}

func pingRedis(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DisableIdentity: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	return c.Ping(ctx).Err()
}

// KeyPrefix returns a key prefix no other test uses, on the shared test
// Redis, and deletes every key under it when the test ends.
func KeyPrefix(t testing.TB) string {
	t.Helper()
	return KeyPrefixAt(t, RedisAddr(t))
}

var unsafeKeyChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// KeyPrefixAt is KeyPrefix for the Redis at addr.
func KeyPrefixAt(t testing.TB, addr string) string {
	t.Helper()
	var r [4]byte
	_, _ = rand.Read(r[:])
	prefix := "sheepdog-test:" + unsafeKeyChars.ReplaceAllString(t.Name(), "_") + ":" + hex.EncodeToString(r[:]) + ":"
	t.Cleanup(func() {
		if err := deletePrefix(addr, prefix); err != nil {
			t.Logf("cleaning keys %s* on %s: %v", prefix, addr, err)
		}
	})
	return prefix
}

// deletePrefix deletes every key that starts with prefix.
func deletePrefix(addr, prefix string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The prefix holds no glob characters: KeyPrefixAt keeps only letters,
	// digits, "_.-" and ":".
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}
