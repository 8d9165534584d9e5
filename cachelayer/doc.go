// Package cachelayer owns Sheepdog's cached answers: the Entry and its
// binary codec, the in-process L1 (ristretto, bounded by bytes), the shared
// L2 (Valkey through go-redis, behind a breaker), and invalidation by tag
// versions and path-prefix bans, carried to the other replicas over
// Valkey pub/sub.
//
// Cache is the tiered front the proxy calls. Deciding what may be cached,
// for how long, and what to answer with a stale entry is the caller's
// business: cachelayer stores, finds and vouches for entries, nothing more.
//
// Invalidation never deletes entries. Every tag has a version number that
// only grows; an entry is stamped with its tags' versions when its upstream
// fetch starts, and is valid while no stamped version is below the current
// one. A write that lands during a fetch therefore voids that fetch's entry
// at once, with no race between invalidating and filling.
package cachelayer
