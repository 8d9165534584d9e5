package cachelayer

import (
	"sync/atomic"
	"time"
)

// HeaderField is one response header kept with an entry. A header with
// several values is kept as several fields with the same name, in order.
type HeaderField struct {
	Name, Value []byte
}

// Entry is one cached answer. It is immutable once stored: L1 hands the
// same *Entry to every reader, so nobody may change it, or the slices it
// holds, after Store.
//
// Times are unix nanoseconds.
type Entry struct {
	Status int
	// Header holds the response headers worth keeping, in order.
	Header []HeaderField
	Body   []byte

	// Stored is when the upstream fetch that produced the entry started.
	// Bans compare against it, so a fetch already under way when a ban
	// lands cannot outlive the ban. No tier keeps an entry more than
	// MaxKeep past Stored, so it must be set.
	Stored int64
	// FreshUntil ends the entry's freshness.
	FreshUntil int64
	// SWRUntil (stale-while-revalidate) and SIEUntil (stale-if-error) end
	// the windows in which a stale entry may still be answered; both are
	// at least FreshUntil.
	SWRUntil, SIEUntil int64

	// Tags name what the entry depends on; TagVersions holds, at the same
	// index, each tag's version when the fetch started. The entry is valid
	// while no tag's current version is above its stamped one.
	Tags        []string
	TagVersions []uint64

	// UpstreamAge is the age, in seconds, the app's answer already had
	// (its Age header): an answer's Age is that plus the time since
	// Stored (RFC 9111 §4.2.3). At most maxUpstreamAge.
	UpstreamAge int64

	// Path is the request path, matched by prefix bans.
	Path string
	// Vary lists the upstream's Vary header names, lower-cased.
	Vary []string
	// Variant is false on a stub: an entry with Vary set and Variant false
	// only tells the caller which request headers to add to the key, and
	// where to look again.
	Variant bool

	// rendered is what the proxy prepared from the entry for writing
	// answers (a ready-made response header), built once on first use
	// and shared by every reader. It is not encoded.
	rendered atomic.Value
}

// maxUpstreamAge bounds UpstreamAge: 2^31 seconds, the most a cache need
// read of a delta-seconds value (RFC 9111 §1.2.2).
const maxUpstreamAge = 1 << 31

// Rendered returns what SetRendered kept with the entry, or nil.
func (e *Entry) Rendered() any { return e.rendered.Load() }

// SetRendered keeps v with the entry for every later reader; the first
// call wins, so readers racing to prepare the same entry agree. v must
// never be changed afterwards.
func (e *Entry) SetRendered(v any) { e.rendered.CompareAndSwap(nil, v) }

// entryOverhead approximates the memory an entry costs beyond its bytes:
// the Entry struct, ristretto's item and map slot, and the L1 key.
const entryOverhead = 256

// sliceOverhead is the header of a slice or string kept by an entry.
const sliceOverhead = 24

// Size estimates the bytes e holds in memory: its L1 cost.
func (e *Entry) Size() int64 {
	n := entryOverhead + len(e.Body) + len(e.Path)
	for _, h := range e.Header {
		n += 2*sliceOverhead + len(h.Name) + len(h.Value)
	}
	for _, tag := range e.Tags {
		n += sliceOverhead + 8 + len(tag)
	}
	for _, v := range e.Vary {
		n += sliceOverhead + len(v)
	}
	return int64(n)
}

// MaxKeep bounds how long after Stored any tier keeps an entry, whatever
// its windows say. Bans and tag versions are remembered this long, which
// is what lets a replica forget them.
const MaxKeep = 24 * time.Hour

// KeepUntil is when the entry stops being of any use: the end of its
// freshness or of its longest stale window.
func (e *Entry) KeepUntil() int64 {
	return max(e.FreshUntil, e.SWRUntil, e.SIEUntil)
}

// expiresAt is when the tiers drop e: KeepUntil, capped at MaxKeep.
func (e *Entry) expiresAt() int64 {
	return min(e.KeepUntil(), e.Stored+int64(MaxKeep))
}

// Fresh reports whether e is still fresh at now.
func (e *Entry) Fresh(now int64) bool { return now < e.FreshUntil }

// IsStub reports whether e only names the Vary headers of its variants.
func (e *Entry) IsStub() bool { return len(e.Vary) > 0 && !e.Variant }
