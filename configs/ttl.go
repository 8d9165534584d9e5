package configs

import "strconv"

// MaxTTLSeconds bounds a valkey sink's ttl: an expiry in milliseconds must
// fit in int64, as Valkey's own check wants, so a longer SETEX is refused.
const MaxTTLSeconds = (1<<63 - 1) / 1000 / 2

// FalsyTTL reports whether JavaScript finds a ttl's text false: missing,
// null, false, or a number equal to 0. The app's `ttl || 86400` then
// takes its default, as a valkey sink takes its ttl_default.
func FalsyTTL(ttl string) bool {
	switch ttl {
	case "", "null", "false":
		return true
	}
	f, err := strconv.ParseFloat(ttl, 64)
	return err == nil && f == 0
}

// TTLSeconds reads a ttl's text as whole seconds, 0 to MaxTTLSeconds.
func TTLSeconds(ttl string) (int64, bool) {
	n, err := strconv.ParseInt(ttl, 10, 64)
	return n, err == nil && n >= 0 && n <= MaxTTLSeconds
}
