// Command origin runs the simulated Style Shepherd app (package shepherd)
// until SIGINT or SIGTERM:
//
//	go run ./bench/origin -addr 127.0.0.1:3001 [-seed 1] [-latency 0] \
//	    [-route-latency products=20ms,profile.get=5ms] [-rate-limit]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
)

// routeLatency is the -route-latency flag: name=duration pairs.
type routeLatency map[string]time.Duration

func (r routeLatency) String() string {
	parts := make([]string, 0, len(r))
	for name, d := range r {
		parts = append(parts, name+"="+d.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (r routeLatency) Set(v string) error {
	for pair := range strings.SplitSeq(v, ",") {
		name, dur, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || name == "" {
			return fmt.Errorf("want name=duration, got %q", pair)
		}
		d, err := time.ParseDuration(dur)
		if err != nil {
			return fmt.Errorf("route %s: %w", name, err)
		}
		r[name] = d
	}
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:3001", "listen address")
	seed := flag.Int64("seed", 1, "catalogue seed")
	products := flag.Int("products", 200, "catalogue size")
	users := flag.Int("users", 20, "seeded user profiles (user_1..user_N)")
	latency := flag.Duration("latency", 0, "latency added to every request")
	rateLimit := flag.Bool("rate-limit", false, "enable the app's 100 requests / 15 min / IP limiter on /api/")
	perRoute := routeLatency{}
	flag.Var(perRoute, "route-latency", "per-route latency, e.g. products=20ms,profile.get=5ms")
	flag.Parse()

	app := shepherd.New(shepherd.Config{
		Seed:         *seed,
		Products:     *products,
		Users:        *users,
		Latency:      *latency,
		RouteLatency: perRoute,
		RateLimit:    *rateLimit,
	})
	for name := range perRoute {
		if !slices.Contains(app.Routes(), name) {
			log.Fatalf("origin: -route-latency: unknown route %q; routes: %s", name, strings.Join(app.Routes(), ", "))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bound, err := app.Start(*addr)
	if err != nil {
		log.Fatalf("origin: %v", err)
	}
	log.Printf("origin: Style Shepherd simulation on http://%s (seed %d, %d products, %d users)", bound, *seed, *products, *users)
	<-ctx.Done()
	log.Printf("origin: stopping")
	if err := app.Close(); err != nil {
		log.Fatalf("origin: %v", err)
	}
}
