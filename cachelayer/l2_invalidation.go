package cachelayer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// bumpScript raises one tag's version by one, and at least to ARGV[1]
// (a time in milliseconds). The floor keeps versions growing when Valkey
// loses its keys (a restart without persistence, an eviction): a plain
// INCR would start again at 1, below what replicas have seen, and the
// invalidation would void nothing.
const bumpScript = `local v = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if v < floor then
  redis.call('SET', KEYS[1], ARGV[1])
  v = floor
end
return v`

// versionFloor is the least version an invalidation at now may give.
func versionFloor(now int64) uint64 { return uint64(now / int64(time.Millisecond)) }

// bump raises each tag's version in one pipeline (a script per tag, so
// each touches one slot of a cluster) and appends the new versions to dst.
func (l *L2) bump(ctx context.Context, tags []string, now int64, dst []uint64) ([]uint64, error) {
	given := len(dst)
	floor := versionFloor(now)
	err := l.do(ctx, func(ctx context.Context) error {
		pipe := l.client.Pipeline()
		cmds := make([]*redis.Cmd, len(tags))
		for i, tag := range tags {
			cmds[i] = pipe.Eval(ctx, bumpScript, []string{l.tagKey(tag)}, floor)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for _, c := range cmds {
			v, err := c.Uint64()
			if err != nil {
				return err
			}
			dst = append(dst, v)
		}
		return nil
	})
	if err != nil {
		return dst[:given], fmt.Errorf("l2 bump: %w", err)
	}
	return dst, nil
}

// publish sends msg to every replica's subscription.
func (l *L2) publish(ctx context.Context, msg []byte) error {
	err := l.do(ctx, func(ctx context.Context) error {
		return l.client.Publish(ctx, l.channel, msg).Err()
	})
	if err != nil {
		return fmt.Errorf("l2 publish: %w", err)
	}
	return nil
}

// addBan records b in the bans sorted set (score: milliseconds, member:
// prefix; GT keeps the later time of a prefix banned twice), drops bans
// older than forgetAfter, and publishes msg, in one pipeline.
func (l *L2) addBan(ctx context.Context, b ban, now int64, msg []byte) error {
	err := l.do(ctx, func(ctx context.Context) error {
		pipe := l.client.Pipeline()
		pipe.ZAddGT(ctx, l.bansKey, redis.Z{Score: float64(b.at / int64(time.Millisecond)), Member: b.prefix})
		pipe.ZRemRangeByScore(ctx, l.bansKey, "-inf", "("+strconv.FormatInt(oldestBanMS(now), 10))
		pipe.Publish(ctx, l.channel, msg)
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("l2 ban: %w", err)
	}
	return nil
}

// loadBans reads the bans still in force, for a replica that starts or
// resubscribes and may have missed their messages. The subscriber calls
// it right after Valkey confirmed a subscription, so it does not wait for
// the breaker.
func (l *L2) loadBans(ctx context.Context, now int64) ([]ban, error) {
	var zs []redis.Z
	err := l.call(ctx, func(ctx context.Context) error {
		var err error
		zs, err = l.client.ZRangeByScoreWithScores(ctx, l.bansKey, &redis.ZRangeBy{
			Min: strconv.FormatInt(oldestBanMS(now), 10),
			Max: "+inf",
		}).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("l2 load bans: %w", err)
	}
	out := make([]ban, 0, len(zs))
	for _, z := range zs {
		prefix, ok := z.Member.(string)
		if !ok {
			continue
		}
		out = append(out, ban{prefix: prefix, at: int64(z.Score) * int64(time.Millisecond)})
	}
	return out, nil
}

func oldestBanMS(now int64) int64 {
	return (now - int64(forgetAfter)) / int64(time.Millisecond)
}

// subscribe opens a subscription to the invalidation channel. go-redis
// connects on the first receive; a failure shows there.
func (l *L2) subscribe(ctx context.Context) *redis.PubSub {
	return l.client.Subscribe(ctx, l.channel)
}
