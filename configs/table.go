package configs

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// RouteTable renders the config for `sheepdog -check`: a summary line,
// then one aligned row per route in match order, so an operator can see
// which route takes a request and what it does with it. The admin token
// and passwords are never shown.
func (c *Config) RouteTable() string {
	var b strings.Builder
	l2 := "off (L1 only)"
	if len(c.Cache.L2.Addrs) > 0 {
		l2 = strings.Join(c.Cache.L2.Addrs, ",")
	}
	token := "no token"
	if c.Admin.Token != "" {
		token = "token set"
	}
	fmt.Fprintf(&b, "listen %s · admin %s (%s) · upstream %s (timeout %s) · l1 %s · l2 %s\n",
		c.Listen, c.Admin.Listen, token, c.Upstream.URL, shortDuration(c.Upstream.Timeout), c.Cache.L1.MaxBytes, l2)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMETHOD\tPATH\tACTION\tDETAILS")
	for i := range c.Routes {
		r := &c.Routes[i]
		method, path := r.Match.Method, r.Match.Path
		if method == "" {
			method = "*"
		}
		if r.Match.PathPrefix != "" {
			path = r.Match.PathPrefix + "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, method, path, r.Action(), r.gist())
	}
	tw.Flush()
	// tabwriter pads the last non-empty cell; drop the trailing blanks.
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// gist is one line saying what the route's action does.
func (r *Route) gist() string {
	var parts []string
	switch r.Action() {
	case ActionCache:
		c := r.Cache
		parts = append(parts, "ttl="+shortDuration(c.TTL))
		if c.StaleWhileRevalidate > 0 {
			parts = append(parts, "swr="+shortDuration(c.StaleWhileRevalidate))
		}
		if c.StaleIfError > 0 {
			parts = append(parts, "sie="+shortDuration(c.StaleIfError))
		}
		for _, k := range []struct {
			src  string
			list []string
		}{{"query", c.Key.Query}, {"header", c.Key.Header}, {"body", c.Key.Body}, {"cookie", c.Key.Cookie}} {
			if len(k.list) > 0 {
				parts = append(parts, "key."+k.src+"="+strings.Join(k.list, ","))
			}
		}
		if len(c.Tags) > 0 {
			parts = append(parts, "tags="+strings.Join(c.Tags, ","))
		}
	case ActionBatch:
		b := r.Batch
		parts = append(parts, b.Sink+"→"+b.target())
		parts = append(parts, fmt.Sprintf("max_items=%d", b.MaxItems), "max_wait="+shortDuration(b.MaxWait))
	}
	if len(r.Invalidates) > 0 {
		parts = append(parts, "invalidates="+strings.Join(r.Invalidates, ","))
	}
	return strings.Join(parts, " ")
}

// target names where a batch goes: the endpoint, the Valkey command or
// the table and its columns.
func (b *BatchRule) target() string {
	switch b.Sink {
	case SinkHTTP:
		return fmt.Sprintf("%s (wrap %s, split %s)", b.URL, b.Wrap, b.Split)
	case SinkValkey:
		if b.Op == OpBatch {
			return "the body's operations, one pipeline"
		}
		return strings.ToUpper(b.Op) + " " + b.Key
	case SinkPostgres:
		return b.Table + "(" + strings.Join(slices.Sorted(maps.Keys(b.Columns)), ",") + ")"
	}
	return "?"
}

// shortDuration writes 60s as "1m" and 10m0s as "10m": the table is read
// by people, and "1m0s" is noise.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
