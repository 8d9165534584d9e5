package configs

import (
	"slices"
	"strings"
	"testing"
)

// TestExampleBroadTags: the writes that can change any row or key
// (/postgres/batch runs arbitrary SQL, /valkey/batch sets any key,
// /batch-store-memory stores for any user) drop one broad tag, so every
// cached read of that store must carry it. Health and metrics reads
// report the store, not its data, and keep their short TTLs instead.
func TestExampleBroadTags(t *testing.T) {
	cfg := loadExample(t)
	stores := []struct{ prefix, tag, write string }{
		{"/api/vultr/postgres/", "postgres", "/api/vultr/postgres/batch"},
		{"/api/vultr/valkey/", "valkey", "/api/vultr/valkey/batch"},
		{"/api/raindrop/", "memory", "/api/raindrop/batch-store-memory"},
	}
	for _, s := range stores {
		w := firstMatch(t, cfg, "POST", s.write)
		if !slices.Contains(w.Invalidates, s.tag) {
			t.Errorf("%s (route %s) invalidates %q, want %q", s.write, w.Name, w.Invalidates, s.tag)
		}
		reads := 0
		for _, r := range cfg.Routes {
			path := r.Match.Path + r.Match.PathPrefix
			if r.Cache == nil || !strings.HasPrefix(path, s.prefix) ||
				strings.HasSuffix(path, "/health") || strings.HasSuffix(path, "/metrics") {
				continue
			}
			reads++
			if !slices.Contains(r.Cache.Tags, s.tag) {
				t.Errorf("cached read %s (%s) lacks the tag %q that %s drops", r.Name, path, s.tag, s.write)
			}
		}
		if reads == 0 {
			t.Errorf("no cached read under %s: the check proves nothing", s.prefix)
		}
	}
}
