package load

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestZipfFollowsItsLaw(t *testing.T) {
	const draws = 200000
	tests := []struct {
		name string
		n    int
		s    float64
	}{
		{"s=1 over 1000 keys", 1000, 1},
		{"s=0.8 over 50 keys", 50, 0.8},
		{"s=1.2 over 10 keys", 10, 1.2},
		{"uniform", 20, 0},
		{"one key", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := NewZipf(tt.n, tt.s)
			if err != nil {
				t.Fatal(err)
			}
			if z.Keys() != tt.n {
				t.Errorf("Keys = %d, want %d", z.Keys(), tt.n)
			}
			r := rand.New(rand.NewPCG(3, 4))
			counts := make([]int, tt.n)
			for range draws {
				k := z.Next(r)
				if k < 0 || k >= tt.n {
					t.Fatalf("key %d outside [0, %d)", k, tt.n)
				}
				counts[k]++
			}
			// The share of key k is (1/(k+1)^s) / H, H the sum over all keys.
			var h float64
			for k := range tt.n {
				h += math.Pow(float64(k+1), -tt.s)
			}
			for _, k := range []int{0, 1, tt.n / 2} {
				if k >= tt.n {
					continue
				}
				want := draws * math.Pow(float64(k+1), -tt.s) / h
				if want < 500 {
					continue // too few draws to judge
				}
				if got := float64(counts[k]); math.Abs(got-want)/want > 0.1 {
					t.Errorf("key %d drawn %v times, want about %.0f", k, got, want)
				}
			}
		})
	}
}

func TestZipfRefusesBadParameters(t *testing.T) {
	tests := []struct {
		name string
		n    int
		s    float64
	}{
		{"no keys", 0, 1},
		{"negative exponent", 10, -1},
		{"NaN exponent", 10, math.NaN()},
		{"infinite exponent", 10, math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewZipf(tt.n, tt.s); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestMixDrawsByWeight(t *testing.T) {
	path := func(p string) Source { return get(p, strings.TrimPrefix(p, "/")) }
	mix, err := NewMix(Weighted{9, path("/read")}, Weighted{1, path("/write")})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	kinds := map[string]int{}
	for range 10000 {
		req.Reset()
		kind := mix.Next(r, req)
		if want := "/" + kind; string(req.URI().Path()) != want {
			t.Fatalf("kind %q wrote path %q", kind, req.URI().Path())
		}
		kinds[kind]++
	}
	if got := kinds["read"]; got < 8800 || got > 9200 {
		t.Errorf("%d reads in 10000, want about 9000", got)
	}

	bad := []struct {
		name  string
		parts []Weighted
	}{
		{"none", nil},
		{"zero weight", []Weighted{{0, path("/a")}}},
		{"negative weight", []Weighted{{-1, path("/a")}}},
		{"NaN weight", []Weighted{{math.NaN(), path("/a")}}},
		{"nil source", []Weighted{{1, nil}}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewMix(tt.parts...); err == nil {
				t.Error("want an error")
			}
		})
	}
}
