package load

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf picks keys by popularity: key k (0-based) is drawn with probability
// proportional to 1/(k+1)^s, so key 0 is the hottest. Unlike rand.Zipf it
// accepts any s >= 0 (web traffic is usually near s = 1, which rand.Zipf
// refuses), and it takes the caller's *rand.Rand on each call, so one Zipf
// serves every worker. It is safe for concurrent use.
type Zipf struct {
	cdf cdf
}

// NewZipf prepares a Zipf over n keys with exponent s (0 is uniform). It
// costs 8 bytes per key.
func NewZipf(n int, s float64) (*Zipf, error) {
	if n < 1 {
		return nil, errors.New("zipf: need at least one key")
	}
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, errors.New("zipf: exponent must be a finite number >= 0")
	}
	return &Zipf{cdf: newCDF(n, func(k int) float64 { return math.Pow(float64(k+1), -s) })}, nil
}

// Next draws a key in [0, n).
func (z *Zipf) Next(r *rand.Rand) int { return z.cdf.draw(r) }

// Keys is the number of keys Next draws from.
func (z *Zipf) Keys() int { return len(z.cdf) }

// cdf is a cumulative distribution over the indices 0..n-1: cdf[i] is the
// probability of drawing an index <= i, and the last entry is exactly 1.
type cdf []float64

// newCDF builds a cdf from n positive weights.
func newCDF(n int, weight func(i int) float64) cdf {
	c := make(cdf, n)
	var sum float64
	for i := range c {
		sum += weight(i)
		c[i] = sum
	}
	for i := range c {
		c[i] /= sum
	}
	c[n-1] = 1
	return c
}

// draw picks an index with one uniform number in [0, 1), so the search
// always lands inside c.
func (c cdf) draw(r *rand.Rand) int { return sort.SearchFloat64s(c, r.Float64()) }
