package cachelayer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timings of the invalidation subscription.
const (
	// subscribeWait is how long New waits for the first subscription.
	subscribeWait = time.Second
	// subscribePing: after this long without a message the subscriber
	// pings, and a second silence as long means the link is dead, however
	// quiet TCP keeps about it.
	subscribePing = 5 * time.Second
	// Retries after a failure back off from the first to the last.
	resubscribeFirst = 50 * time.Millisecond
	resubscribeLast  = time.Second
)

// startSubscriber starts the goroutine that keeps this replica subscribed
// to the invalidation channel, and waits up to subscribeWait for it to be
// subscribed, so that a replica that has just started does not miss
// invalidations it could have had.
func (c *Cache) startSubscriber() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stopSub = cancel
	c.subDone = make(chan struct{})
	ready := make(chan struct{})
	go c.runSubscriber(ctx, ready)
	select {
	case <-ready:
	case <-time.After(subscribeWait):
		c.log.Warn("l2 invalidation subscription not ready; serving from L1 and upstream until it is",
			"channel", c.l2.channel, "waited", subscribeWait)
	}
}

// stopSubscriber stops the subscriber goroutine and waits for it.
func (c *Cache) stopSubscriber() {
	c.stopSub()
	c.subMu.Lock()
	if c.sub != nil {
		_ = c.sub.Close() // wakes a receive in progress
	}
	c.subMu.Unlock()
	<-c.subDone
}

// runSubscriber is the subscriber goroutine, owned by the Cache and
// stopped by Close. It holds one subscription at a time; when one fails
// it opens another after a backoff.
//
// While not subscribed, this replica cannot vouch for its L1: another
// replica's invalidation may have gone past unheard. So L1 is cleared the
// moment a subscription is lost, and again once one is back (entries
// stored in between were stamped without those invalidations), and the
// bans are read again from L2. Each clear is counted; L2 entries need
// none of this, since L2 lookups read the shared versions.
func (c *Cache) runSubscriber(ctx context.Context, ready chan struct{}) {
	defer close(c.subDone)
	backoff := resubscribeFirst
	warned := "" // the loss last logged, so a fault that persists is logged once
	for {
		sub := c.l2.subscribe(ctx)
		c.subMu.Lock()
		c.sub = sub
		c.subMu.Unlock()
		if ctx.Err() != nil { // Close ran before c.sub was set
			_ = sub.Close()
			return
		}
		live, settled, err := c.listen(ctx, sub, ready)
		_ = sub.Close()
		if ctx.Err() != nil {
			return
		}
		if settled {
			// It worked for a while: the next loss is news, and is
			// retried at once.
			backoff, warned = resubscribeFirst, ""
		}
		if live {
			c.flushL1()
			if msg := fmt.Sprint(err); msg != warned {
				c.log.Warn("l2 invalidation subscription lost; L1 cleared", "error", err)
				warned = msg
			}
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, resubscribeLast)
	}
}

// listen receives on sub until it fails. live reports whether sub was
// ever subscribed; settled, whether the bans were then read as well, so
// that the subscription was in full use. A subscription that comes up
// but cannot read the bans (Valkey slower than the L2 timeout, an ACL
// that refuses the read) is not settled, and is retried with backoff.
func (c *Cache) listen(ctx context.Context, sub *redis.PubSub, ready chan struct{}) (live, settled bool, err error) {
	pinged := false
	for {
		m, err := sub.ReceiveTimeout(ctx, subscribePing)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				pinged = true
				if err := sub.Ping(ctx); err != nil {
					return live, settled, err
				}
				continue
			}
			return live, settled, err
		}
		pinged = false
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" || m.Channel != c.l2.channel || live {
				continue
			}
			live = true
			if err := c.subscribed(ctx, ready); err != nil {
				return live, settled, err
			}
			settled = true
		case *redis.Message:
			c.receive([]byte(m.Payload))
		}
	}
}

// subscribed runs when a subscription is confirmed. It reloads the bans
// (failing, the subscription is dropped and tried again: a replica that
// may have missed a ban cannot vouch for its L1 either) and, unless New
// is still waiting for this first subscription, clears L1.
func (c *Cache) subscribed(ctx context.Context, ready chan struct{}) error {
	now := time.Now().UnixNano()
	bans, err := c.l2.loadBans(ctx, now)
	if err != nil {
		return err
	}
	c.bans.add(now, bans...)
	select {
	case <-ready:
	default:
		close(ready)
	}
	if c.serving.Load() {
		c.regained.Store(now)
		c.flushL1()
		c.log.Info("l2 invalidation subscription back; L1 cleared")
	}
	return nil
}

func (c *Cache) flushL1() {
	c.l1.Clear()
	c.stats.l1Flushes.Add(1)
}

// receive applies another replica's message. Malformed payloads are
// dropped: the channel is ours, but anyone with the password can publish.
func (c *Cache) receive(payload []byte) {
	m, err := parseMessage(payload)
	if err != nil || m.sender == c.id {
		return
	}
	now := time.Now().UnixNano()
	switch m.kind {
	case msgVersions:
		c.versions.raise(m.tags, m.versions, now)
		c.stats.invalidationsIn.Add(1)
		if f := c.lagObserver.Load(); f != nil {
			(*f)(time.Duration(max(now-m.sent, 0)))
		}
	case msgBan:
		c.bans.add(now, m.ban)
		c.stats.bansIn.Add(1)
	case msgDelete:
		for _, k := range m.keys {
			c.l1.Del(k)
		}
		c.stats.deletesIn.Add(1)
	}
}
