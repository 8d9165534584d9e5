package cachelayer

import (
	"context"
	"time"
)

// writeQueueSize bounds the entries waiting for the writer. Each is a
// pointer to an entry L1 already holds, so the queue costs little; 4096
// absorbs a burst of misses across every route while Valkey is slow, and
// past it a write is dropped (and counted) rather than ever blocking an
// answer.
const writeQueueSize = 4096

// writeBatch bounds the entries sent in one pipeline.
const writeBatch = 128

// l2Write is one queued entry, or, with flushed set, a marker that Wait
// uses to learn that everything queued before it has been sent.
type l2Write struct {
	k       Key
	e       *Entry
	flushed chan struct{}
}

// Set queues e to be written under k, with Valkey expiring it at
// e.KeepUntil (at most MaxKeep past e.Stored). It never blocks: when the
// queue is full the write is dropped and counted.
func (l *L2) Set(k Key, e *Entry) {
	select {
	case <-l.stop:
		l.stats.dropped.Add(1)
		return
	default:
	}
	select {
	case l.queue <- l2Write{k: k, e: e}:
		l.stats.queued.Add(1)
	default:
		l.stats.dropped.Add(1)
	}
}

// Wait blocks until every entry queued before it has been sent (or
// failed), or L2 is closed. For tests.
func (l *L2) Wait() {
	flushed := make(chan struct{})
	select {
	case l.queue <- l2Write{flushed: flushed}:
	case <-l.stop:
		return
	}
	select {
	case <-flushed:
	case <-l.done:
	}
}

// runWriter is the writer goroutine, owned by L2 and stopped by Close.
// It sends what is queued in pipelines of up to writeBatch entries; on
// Close it makes one last attempt at what is still queued.
func (l *L2) runWriter() {
	defer close(l.done)
	batch := make([]l2Write, 0, writeBatch)
	var buf []byte // encoded values, reused from one pipeline to the next
	for {
		select {
		case w := <-l.queue:
			batch = l.gather(append(batch[:0], w))
			buf = l.write(batch, buf)
		case <-l.stop:
			for {
				batch = l.gather(batch[:0])
				if len(batch) == 0 {
					return
				}
				buf = l.write(batch, buf)
			}
		}
	}
}

// gather adds to batch what is already queued, without waiting.
func (l *L2) gather(batch []l2Write) []l2Write {
	for len(batch) < cap(batch) {
		select {
		case w := <-l.queue:
			batch = append(batch, w)
		default:
			return batch
		}
	}
	return batch
}

// write sends batch's entries in one pipeline of SETs with PX, then
// releases the Wait markers among them. It returns buf for reuse.
func (l *L2) write(batch []l2Write, buf []byte) []byte {
	now := time.Now().UnixNano()
	type pending struct {
		key        string
		start, end int
		ttl        time.Duration
	}
	sets := make([]pending, 0, len(batch))
	buf = buf[:0]
	for _, w := range batch {
		if w.e == nil {
			continue
		}
		ttl := time.Duration(w.e.expiresAt() - now)
		if ttl < time.Millisecond { // PX cannot say less
			continue
		}
		start := len(buf)
		buf = w.e.AppendEncode(buf)
		sets = append(sets, pending{key: l.entryKey(w.k), start: start, end: len(buf), ttl: ttl})
	}
	if len(sets) > 0 {
		err := l.do(context.Background(), func(ctx context.Context) error {
			pipe := l.client.Pipeline()
			for _, s := range sets {
				pipe.Set(ctx, s.key, buf[s.start:s.end], s.ttl)
			}
			_, err := pipe.Exec(ctx)
			return err
		})
		if err != nil {
			l.stats.writeFailed.Add(uint64(len(sets)))
		} else {
			l.stats.written.Add(uint64(len(sets)))
		}
	}
	for _, w := range batch {
		if w.flushed != nil {
			close(w.flushed)
		}
	}
	return buf
}
