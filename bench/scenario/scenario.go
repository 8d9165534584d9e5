// Package scenario is the traffic of the Sheepdog bench: what Style
// Shepherd's front end sends, as load.Sources over the data the simulated
// app was seeded with, so that every read finds something and every write
// is one the app accepts.
//
// Popularity follows Zipf's law with exponent 1, as web traffic roughly
// does: the hottest user, product query and search are asked far more
// often than the rest, which is what makes a cache worth having.
package scenario

import (
	"fmt"
	"slices"
	"strings"

	"github.com/style-shepherd/sheepdog/bench/load"
)

// Scenario is one named kind of traffic.
type Scenario struct {
	// Name is the -scenarios word and the report's scenario column.
	Name string
	// Reads says the scenario sends only reads, so it also runs through
	// the caches -compare names (which would pass every write through).
	Reads bool
	// Burst says the scenario is one burst: every client sends a single
	// request, all at once, in the closed loop whatever the run's mode.
	Burst bool
	// Outage, when set, is when in the run the bench stops Sheepdog's L2
	// and starts it again.
	Outage *Outage
	// NewSource returns the requests of one row. It is called once per
	// target, so a burst's cold key is cold for each of them.
	NewSource func() load.Source
}

// Outage is a stretch of a run with the L2 down, in fractions of the run:
// {From: 1/3, To: 2/3} stops Valkey a third of the way in and restarts it
// two thirds of the way in.
type Outage struct{ From, To float64 }

// catalog is every scenario, in the order a run measures them, with what
// it sends.
var catalog = []struct{ name, about string }{
	{"browse", "Zipf reads: products (the five real parameters, sometimes ?id=X), profiles, orders, memory searches"},
	{"herd", "every client at once on one products query never asked before"},
	{"write-burst", "writes only: store-memory, orders, returns, cache sets"},
	{"mixed", "90% browse reads, 10% writes (profile updates, orders, memories) to the same hot users"},
	{"failover", "browse reads while Sheepdog's Valkey is stopped a third of the way in and restarted at two thirds"},
}

// Names lists every scenario, in the order a run measures them.
func Names() []string {
	names := make([]string, len(catalog))
	for i, c := range catalog {
		names[i] = c.name
	}
	return names
}

// About says what the named scenario sends; "" for an unknown name.
func About(name string) string {
	for _, c := range catalog {
		if c.name == name {
			return c.about
		}
	}
	return ""
}

// New builds the named scenario over seed.
func New(name string, seed *Seed) (*Scenario, error) {
	if err := seed.check(); err != nil {
		return nil, err
	}
	reads, err := newReads(seed)
	if err != nil {
		return nil, err
	}
	switch name {
	case "browse":
		return &Scenario{Name: name, Reads: true, NewSource: func() load.Source { return reads.browse }}, nil
	case "herd":
		return &Scenario{Name: name, Reads: true, Burst: true, NewSource: reads.herd()}, nil
	case "write-burst":
		w, err := newWrites(seed, reads.users)
		if err != nil {
			return nil, err
		}
		return &Scenario{Name: name, NewSource: func() load.Source { return w.burst }}, nil
	case "mixed":
		w, err := newWrites(seed, reads.users)
		if err != nil {
			return nil, err
		}
		mix, err := load.NewMix(load.Weighted{Weight: 9, Source: reads.browse}, load.Weighted{Weight: 1, Source: w.invalidating})
		if err != nil {
			return nil, err
		}
		return &Scenario{Name: name, NewSource: func() load.Source { return mix }}, nil
	case "failover":
		return &Scenario{Name: name, Outage: &Outage{From: 1.0 / 3, To: 2.0 / 3},
			NewSource: func() load.Source { return reads.browse }}, nil
	}
	return nil, fmt.Errorf("no scenario %q; there are %s", name, strings.Join(Names(), ", "))
}

// Known reports whether name is a scenario.
func Known(name string) bool { return slices.Contains(Names(), name) }
