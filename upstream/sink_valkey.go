package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The operations a ValkeyItem can ask for.
const (
	ValkeySet    = "set"
	ValkeyDel    = "del"
	ValkeyExpire = "expire"
)

// ValkeyItem is one write for the Valkey sink, its templates already
// resolved by the proxy.
type ValkeyItem struct {
	// Op is ValkeySet, ValkeyDel or ValkeyExpire.
	Op string
	// Key is the app's own key, written as it is: the cache's key_prefix
	// is not added, so the app finds what Sheepdog wrote.
	Key string
	// Value is the JSON value a set stores, as the app stores it: a JSON
	// string as its raw text, any other value as its JSON text (see
	// appText). Empty is the app's missing value, stored as "".
	Value json.RawMessage
	// TTL is in seconds. A set with a TTL is SETEX, without (0) a SET
	// that never expires; an expire with a TTL is EXPIRE, without a
	// PERSIST, so 0 means "no expiry" for both. A negative TTL is the
	// item's error: Valkey would refuse it in SETEX and delete the key
	// in EXPIRE.
	TTL int64
}

// ValkeyResult is one item's outcome. Err is nil when Valkey took the
// write, and otherwise the item's own failure: a command Valkey refused
// (an expiry out of range, say) or an item the sink could not send.
type ValkeyResult struct {
	Err error
}

// ValkeySink writes batches of items to Valkey in one pipelined round
// trip. It holds no state of its own and is safe for concurrent use.
type ValkeySink struct {
	client redis.UniversalClient
}

// Flush has the shape coalesce.Batcher calls.
var _ func(context.Context, []ValkeyItem) ([]ValkeyResult, error) = (*ValkeySink)(nil).Flush

// NewValkeySink returns a sink that writes through client, the L2
// connection or one of the route's own. On a cluster client a batch is
// one pipeline per node its keys live on.
func NewValkeySink(client redis.UniversalClient) *ValkeySink {
	return &ValkeySink{client: client}
}

// Flush sends every item in one pipeline and returns one result per item,
// in order. Items the sink cannot send (an unknown op, an empty key, a
// value that is not JSON) get their error without a round trip. The
// batch fails as a whole, with ErrUnavailable, only when no command of it
// ran because Valkey could not be reached or took no write at all
// (loading, read-only): splitting it would not help. When some ran (out
// of memory refuses SETs but runs DELs), each refused one gets its
// ErrUnavailable, and the rest their success.
func (s *ValkeySink) Flush(ctx context.Context, items []ValkeyItem) ([]ValkeyResult, error) {
	results := make([]ValkeyResult, len(items))
	cmds := make([]redis.Cmder, len(items)) // nil for an item not sent
	pipe := s.client.Pipeline()
	sent := 0
	for i, it := range items {
		cmd, err := queueValkey(ctx, pipe, it)
		if err != nil {
			results[i].Err = err
			continue
		}
		cmds[i] = cmd
		sent++
	}
	if sent == 0 {
		return results, nil
	}
	// Exec's error is the first command's; each is read on its own below.
	_, _ = pipe.Exec(ctx)
	refused := 0
	var storeErr error
	for i, cmd := range cmds {
		if cmd == nil || cmd.Err() == nil {
			continue
		}
		err := cmd.Err()
		if itemError(err) {
			results[i].Err = fmt.Errorf("valkey %s: %w", items[i].Op, err)
			continue
		}
		refused++
		storeErr = err
		results[i].Err = storeError("valkey "+items[i].Op, err)
	}
	if refused == sent {
		return nil, storeError("valkey pipeline", storeErr)
	}
	return results, nil
}

// queueValkey adds the command for it to pipe.
func queueValkey(ctx context.Context, pipe redis.Pipeliner, it ValkeyItem) (redis.Cmder, error) {
	if it.Key == "" {
		return nil, errors.New("valkey: empty key")
	}
	if it.TTL < 0 {
		return nil, fmt.Errorf("valkey: negative ttl %d", it.TTL)
	}
	switch it.Op {
	case ValkeySet:
		text, err := appText(it.Value)
		if err != nil {
			return nil, fmt.Errorf("valkey set value: %w", err)
		}
		if it.TTL == 0 {
			return pipe.Set(ctx, it.Key, text, 0), nil
		}
		// SETEX, not go-redis's SET EX: the same write, but the one the
		// app sends, so Valkey's command stats read as they do for it.
		return pipe.Do(ctx, "setex", it.Key, it.TTL, text), nil
	case ValkeyDel:
		return pipe.Del(ctx, it.Key), nil
	case ValkeyExpire:
		if it.TTL == 0 {
			return pipe.Persist(ctx, it.Key), nil
		}
		// Whole seconds as they are: a time.Duration of them overflows
		// past 292 years, and a negative EXPIRE deletes the key.
		return pipe.Do(ctx, "expire", it.Key, it.TTL), nil
	default:
		return nil, fmt.Errorf("valkey: unknown op %q", it.Op)
	}
}

// storeWideReplies start the replies that refuse every write, not one
// item's: the store is starting, a replica, out of memory, or refusing us.
var storeWideReplies = []string{
	"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
	"NOREPLICAS", "OOM", "NOAUTH", "WRONGPASS", "ERR max number of clients",
}

// itemError reports whether err is Valkey's answer to that command alone.
// Anything else (the network, a timeout, a store-wide refusal) fails the
// batch.
func itemError(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return false
	}
	for _, p := range storeWideReplies {
		if strings.HasPrefix(reply.Error(), p) {
			return false
		}
	}
	return true
}

// String names the sink's target for logs.
func (s *ValkeySink) String() string {
	switch c := s.client.(type) {
	case *redis.Client:
		return "valkey " + c.Options().Addr
	case *redis.ClusterClient:
		return "valkey cluster " + strings.Join(c.Options().Addrs, ",")
	default:
		return "valkey"
	}
}
