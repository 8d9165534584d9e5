//go:build !race

package cachelayer

import "testing"

// The pooled builder allocates nothing once the pool is warm; under the
// race detector the pool drops builders on purpose, so this check exists
// only without it.
func TestKeyBuilderPoolAllocs(t *testing.T) {
	value := []byte("shoes")
	assertNoAllocs(t, "building a key with a pooled builder", func() {
		b := AcquireKeyBuilder()
		b.Add("route", value)
		b.Add("query.category", value)
		_ = b.Sum()
		ReleaseKeyBuilder(b)
	})
}
