package proxy

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestRecentErrorsPerProxy: an error one proxy answers is in its own
// /stats, and not in another's in the same process.
func TestRecentErrorsPerProxy(t *testing.T) {
	_, origin := startOrigin(t)
	_, addrA, adminA := startProxy(t, cacheConfig(t, origin, ""))
	_, _, adminB := startProxy(t, cacheConfig(t, origin, ""))
	resp := get(t, rawClient(addrA), "POST", "/api/raindrop/search-memory", "Content-Type", "application/json", "body", "not JSON")
	if resp.StatusCode() != 400 {
		t.Fatalf("a body the key cannot read: %d, want 400", resp.StatusCode())
	}
	fasthttp.ReleaseResponse(resp)
	recent := func(admin string) []RecentError {
		resp := get(t, rawClient(admin), "GET", "/stats")
		defer fasthttp.ReleaseResponse(resp)
		var s Stats
		if err := json.Unmarshal(resp.Body(), &s); err != nil {
			t.Fatal(err)
		}
		return s.RecentErrors
	}
	a, b := recent(adminA), recent(adminB)
	if len(a) != 1 || a[0].Status != 400 || a[0].Route != "search-memory" {
		t.Errorf("A's recent errors %+v, want its one 400 on route search-memory", a)
	}
	if len(b) != 0 {
		t.Errorf("B's recent errors %+v, want none", b)
	}
}
