package load

import (
	"errors"
	"math"
	"math/rand/v2"

	"github.com/valyala/fasthttp"
)

// Source writes the next request of a scenario. Next fills req's method,
// request URI (path and query), headers and body, and names the kind of
// request ("read", "write", …) under which its result is reported; an empty
// kind is reported as "request". The run sets the scheme and host itself and
// always sends to its own target, whatever req says.
//
// Next is called from many workers at once, each passing its own r: draw
// randomness only from r and Next is safe for concurrent use and repeatable
// for a given Config.Seed. req arrives reset.
type Source interface {
	Next(r *rand.Rand, req *fasthttp.Request) (kind string)
}

// SourceFunc lets a plain function serve as a Source.
type SourceFunc func(r *rand.Rand, req *fasthttp.Request) string

// Next calls f.
func (f SourceFunc) Next(r *rand.Rand, req *fasthttp.Request) string { return f(r, req) }

// Weighted is one part of a Mix.
type Weighted struct {
	Weight float64
	Source Source
}

// Mix sends each request from one of its sources, chosen at random in
// proportion to the weights: {9, reads}, {1, writes} is 90% reads.
type Mix struct {
	cdf     cdf
	sources []Source
}

// NewMix builds a Mix. Weights must be positive and finite.
func NewMix(parts ...Weighted) (*Mix, error) {
	if len(parts) == 0 {
		return nil, errors.New("mix: no sources")
	}
	sources := make([]Source, len(parts))
	for i, p := range parts {
		if p.Source == nil {
			return nil, errors.New("mix: nil source")
		}
		if !(p.Weight > 0) || math.IsInf(p.Weight, 0) {
			return nil, errors.New("mix: weights must be positive and finite")
		}
		sources[i] = p.Source
	}
	return &Mix{cdf: newCDF(len(parts), func(i int) float64 { return parts[i].Weight }), sources: sources}, nil
}

// Next delegates to one source drawn by weight.
func (m *Mix) Next(r *rand.Rand, req *fasthttp.Request) string {
	return m.sources[m.cdf.draw(r)].Next(r, req)
}

var (
	_ Source = SourceFunc(nil)
	_ Source = (*Mix)(nil)
)
