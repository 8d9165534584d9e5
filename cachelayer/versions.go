package cachelayer

import (
	"sync"
	"time"
)

// forgetAfter is how long a replica remembers a tag's version or a ban
// after it last changed: MaxKeep, past which no entry stamped before the
// change can still exist, plus an hour for replicas that learnt of the
// change late or whose clocks disagree.
const forgetAfter = MaxKeep + time.Hour

// minPruneSize is the number of tags below which versions never prunes.
const minPruneSize = 1024

// tagVersions is a replica's view of every tag's version. Versions only
// grow. A tag absent from the map is at version 0.
type tagVersions struct {
	mu        sync.RWMutex          // protects m and nextPrune
	m         map[string]tagVersion // by tag
	nextPrune int                   // prune when m grows to this size
}

type tagVersion struct {
	v      uint64
	raised int64 // unix nanos of the last raise, for pruning
}

func newTagVersions() *tagVersions {
	return &tagVersions{m: make(map[string]tagVersion), nextPrune: minPruneSize}
}

// appendTo appends the current version of each tag to dst.
func (tv *tagVersions) appendTo(dst []uint64, tags []string) []uint64 {
	if len(tags) == 0 {
		return dst
	}
	tv.mu.RLock()
	for _, tag := range tags {
		dst = append(dst, tv.m[tag].v)
	}
	tv.mu.RUnlock()
	return dst
}

// valid reports whether no tag of e has moved past the version e was
// stamped with.
func (tv *tagVersions) valid(e *Entry) bool {
	if len(e.Tags) != len(e.TagVersions) {
		return false
	}
	if len(e.Tags) == 0 {
		return true
	}
	tv.mu.RLock()
	defer tv.mu.RUnlock()
	for i, tag := range e.Tags {
		if tv.m[tag].v > e.TagVersions[i] {
			return false
		}
	}
	return true
}

// raise lifts each tag to at least the version at the same index.
func (tv *tagVersions) raise(tags []string, versions []uint64, now int64) {
	tv.mu.Lock()
	defer tv.mu.Unlock()
	for i, tag := range tags {
		if i < len(versions) && versions[i] > tv.m[tag].v {
			tv.m[tag] = tagVersion{v: versions[i], raised: now}
		}
	}
	tv.maybePrune(now)
}

// bump raises each tag's version by one, and at least to versionFloor(now)
// as L2 does, for invalidations that L2 cannot carry; it appends the new
// versions to dst. The floor matters with L2 away: a replica that bumped
// locally and another that later bumps in L2 still order their versions
// by time, so the later invalidation voids the earlier replica's fills.
func (tv *tagVersions) bump(tags []string, now int64, dst []uint64) []uint64 {
	tv.mu.Lock()
	defer tv.mu.Unlock()
	for _, tag := range tags {
		v := max(tv.m[tag].v+1, versionFloor(now))
		tv.m[tag] = tagVersion{v: v, raised: now}
		dst = append(dst, v)
	}
	tv.maybePrune(now)
	return dst
}

// maybePrune forgets tags unchanged for forgetAfter, once the map has
// doubled since the last pass, so pruning costs O(1) per raise over time.
// Forgetting is safe: every entry stamped below a forgotten version has
// expired (MaxKeep), and L2 lookups bring the shared versions back.
func (tv *tagVersions) maybePrune(now int64) {
	if len(tv.m) < tv.nextPrune {
		return
	}
	for tag, v := range tv.m {
		if now-v.raised > int64(forgetAfter) {
			delete(tv.m, tag)
		}
	}
	tv.nextPrune = max(minPruneSize, 2*len(tv.m))
}
