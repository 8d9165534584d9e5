package configs

import "time"

// This file is the one place defaults live. Parse starts from these values
// and overwrites only what the file sets, so a key written as 0 stays 0 and
// is reported by validation rather than silently replaced.

// Default returns a Config holding every documented default. It has no
// upstream URL and no routes, so it does not validate on its own.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	c.Listen = "127.0.0.1:8080"
	c.Admin.Listen = "127.0.0.1:9901"
	c.Upstream.Timeout = 10 * time.Second
	c.Upstream.MaxConns = 512
	c.Upstream.HealthPath = "/"
	c.Upstream.IdleTimeout = 4 * time.Second
	c.Server = Server{
		MaxBodySize:   10 << 20,
		MaxHeaderSize: 16 << 10,
		ReadTimeout:   60 * time.Second,
		WriteTimeout:  60 * time.Second,
		IdleTimeout:   90 * time.Second,
		MaxConns:      10000,
		ShutdownGrace: 10 * time.Second,
	}
	c.Cache.L1.MaxBytes = 256 << 20
	c.Cache.L2.KeyPrefix = "sheepdog:"
	c.Cache.L2.Timeout = 50 * time.Millisecond
	c.Telemetry.ServiceName = "sheepdog"
	c.Telemetry.Traces = "none"
}

// setDefaults runs when a route's cache block is read.
func (r *CacheRule) setDefaults() {
	r.Statuses = []int{200, 203, 204, 300, 301, 404, 410}
}

// setDefaults runs when a route's batch block is read; the defaults that
// depend on the sink are set by setSinkDefaults once the sink is known.
func (r *BatchRule) setDefaults() {
	r.MaxItems = 100
	r.MaxBytes = 1 << 20
	r.MaxWait = 2 * time.Millisecond
	r.Queue = 10000
	r.MaxInFlight = 4
}

// setSinkDefaults fills the fields of the chosen sink that were left empty.
func (r *BatchRule) setSinkDefaults() {
	switch r.Sink {
	case SinkHTTP:
		r.Wrap = orDefault(r.Wrap, "items")
		r.Split = orDefault(r.Split, "results")
	case SinkValkey:
		r.Op = orDefault(r.Op, OpSet)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
