package proxy

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// cacheControl is what Sheepdog reads of an upstream Cache-Control header.
type cacheControl struct {
	noStore, private, noCache bool
	maxAge, sMaxAge           time.Duration // -1 when absent
}

func parseCacheControl(lines [][]byte) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1}
	// Several Cache-Control lines are one list (RFC 9110 §5.3).
	for _, v := range lines {
		for len(v) > 0 {
			var d []byte
			d, v = nextDirective(v)
			name, arg, _ := bytes.Cut(d, []byte("="))
			switch string(bytes.ToLower(bytes.TrimSpace(name))) {
			case "no-store":
				cc.noStore = true
			case "private":
				cc.private = true
			case "no-cache":
				cc.noCache = true
			// A directive given twice: the first counts (RFC 9111 §4.2.1).
			case "max-age":
				if cc.maxAge < 0 {
					cc.maxAge = parseSeconds(arg)
				}
			case "s-maxage":
				if cc.sMaxAge < 0 {
					cc.sMaxAge = parseSeconds(arg)
				}
			}
		}
	}
	return cc
}

// nextDirective splits the first directive off a Cache-Control list, at
// the first comma outside a quoted string (RFC 9110 §5.6.4: a quoted
// argument may hold commas, and backslash-escaped quotes).
func nextDirective(v []byte) (d, rest []byte) {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return bytes.TrimSpace(v[:i]), v[i+1:]
		}
	}
	return bytes.TrimSpace(v), nil
}

// parseSeconds reads a delta-seconds argument; a malformed one counts as 0
// (stale), and one beyond 2^31 as 2^31, as RFC 9111 §1.2.2 asks.
func parseSeconds(arg []byte) time.Duration {
	const most = 1 << 31
	n, err := strconv.ParseInt(string(bytes.Trim(bytes.TrimSpace(arg), `"`)), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && n > 0, err == nil && n > most:
		n = most
	case err != nil || n < 0:
		return 0
	}
	return time.Duration(n) * time.Second
}

// freshFor is how long an answer stays fresh: the route's ttl, capped by
// what the upstream's s-maxage (a shared cache's own) or else max-age
// leaves once the answer's age is taken off.
func (cc cacheControl) freshFor(ttl, age time.Duration) time.Duration {
	switch {
	case cc.sMaxAge >= 0:
		return min(ttl, cc.sMaxAge-age)
	case cc.maxAge >= 0:
		return min(ttl, cc.maxAge-age)
	}
	return ttl
}

// expiresIn is the freshness an Expires header gives when no max-age does
// (RFC 9111 §4.2.1): Expires minus the answer's Date, or minus now when
// it has none. An Expires that is not a date has already passed.
func expiresIn(expires, date []byte, now time.Time) time.Duration {
	// http.ParseTime reads the three forms a recipient must (RFC 9110
	// §5.6.7): IMF-fixdate, RFC 850 and asctime.
	t, err := http.ParseTime(string(expires))
	if err != nil {
		return 0
	}
	if d, err := http.ParseTime(string(date)); err == nil {
		now = d
	}
	return max(0, t.Sub(now))
}

// upstreamAge reads an Age header: how long the answer has already been
// held by caches before the app (RFC 9111 §5.1); 0 when absent or not
// whole seconds.
func upstreamAge(v []byte) time.Duration {
	n, err := strconv.ParseUint(string(v), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange), err == nil && n > 1<<31:
		n = 1 << 31 // RFC 9111 §1.2.2
	case err != nil:
		return 0
	}
	return time.Duration(n) * time.Second
}

// refreshEarly decides, on a fresh hit, whether to refresh the entry in
// the background before it expires (XFetch, Vattani et al., VLDB 2015):
// the chance rises as expiry nears, scaled by how long a fetch takes, so a
// hot key is refreshed just in time and never expires under load.
func refreshEarly(remaining, fetchTime time.Duration) bool {
	if fetchTime <= 0 || remaining > 20*fetchTime { // e^-20: not worth a draw
		return false
	}
	return float64(remaining) < -float64(fetchTime)*math.Log(1-rand.Float64())
}
