package proxy

import (
	"context"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestBatchBodyAppRefuses: bodies express.json() refuses (strict mode:
// a top-level JSON that is not an object or array; a charset it cannot
// decode) or reads otherwise (after a byte order mark) are the app's to
// answer: the same status as the app's own, and nothing written by
// Sheepdog (the session batch stored them and answered 200).
func TestBatchBodyAppRefuses(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	_, originAddr := startOrigin(t)
	direct := rawClient(originAddr)
	for i, tc := range []struct{ ct, body string }{
		{"application/json", `"a string"`},
		{"application/json", `null`},
		{"application/json", `42`},
		{"application/json; charset=latin1", `{"userId":"u"}`},
		{"application/json; charset=utf8", `{"userId":"u"}`}, // body-parser wants "utf-"
		{"application/json; charset=utf-8; charset=latin1", `{"userId":"u"}`},
		{"application/json", "\xEF\xBB\xBF{\"userId\":\"u\"}"},
	} {
		path := "/api/vultr/valkey/session/bodies-" + string(rune('a'+i))
		app := get(t, direct, "POST", path, "Content-Type", tc.ct, "body", tc.body)
		px := get(t, r.c, "POST", path, "Content-Type", tc.ct, "body", tc.body)
		stored, err := r.redis.Get(context.Background(), r.prefix+"session:bodies-"+string(rune('a'+i))).Result()
		if px.StatusCode() != app.StatusCode() || err == nil {
			t.Errorf("%s %s: app %d %s; Sheepdog %d %s and stored %q (%v)", tc.ct, tc.body,
				app.StatusCode(), app.Body(), px.StatusCode(), px.Body(), stored, err)
		}
	}
}

// TestBatchBodyAppRefusesInvalidatingRoute: the same pass to the app on a
// route whose invalidation reads the body (store-memory's memory:U),
// which reads a body already read.
func TestBatchBodyAppRefusesInvalidatingRoute(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	_, originAddr := startOrigin(t)
	for _, body := range []string{`"a string"`, "\xEF\xBB\xBF{\"userId\":\"u\",\"text\":\"t\"}"} {
		app := get(t, rawClient(originAddr), "POST", "/api/raindrop/store-memory", "body", body)
		px := get(t, r.c, "POST", "/api/raindrop/store-memory", "body", body)
		if px.StatusCode() != app.StatusCode() {
			t.Errorf("%q: Sheepdog %d %s, app %d %s", body, px.StatusCode(), px.Body(), app.StatusCode(), app.Body())
		}
		fasthttp.ReleaseResponse(app)
		fasthttp.ReleaseResponse(px)
	}
}
