package shepherd

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for TTL tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestOrdersWriteThenRead(t *testing.T) {
	c := &clock{now: fixedNow}
	app := New(Config{Now: c.Now})
	const list = vultr + "/postgres/users/user_4/orders"
	before := len(data(t, call(t, app, "GET", list, "")).([]any))

	var ids []string
	for i := range 3 {
		c.advance(time.Second)
		body := fmt.Sprintf(`{"user_id":"user_4","items":[{"product_id":"prod_0001","quantity":%d,"price":19.5,"size":"M"}],"total_amount":%d.005,"status":"paid"}`, i+1, 10*(i+1))
		resp := call(t, app, "POST", vultr+"/postgres/orders", body)
		if resp.StatusCode() != 200 {
			t.Fatalf("create order: %d %s", resp.StatusCode(), resp.Body())
		}
		d := data(t, resp).(map[string]any)
		id, _ := d["orderId"].(string)
		if !regexp.MustCompile(`^order_` + fmt.Sprint(c.Now().UnixMilli()) + `_[0-9a-z]{9}$`).MatchString(id) {
			t.Fatalf("orderId %q is not order_<ms>_<rand>", id)
		}
		if d["user_id"] != "user_4" || d["status"] != "paid" || !strings.Contains(string(resp.Body()), fmt.Sprintf(`"total_amount":%d.005`, 10*(i+1))) {
			t.Fatalf("answer does not echo the body: %s", resp.Body())
		}
		ids = append(ids, id)
	}
	rows := data(t, call(t, app, "GET", list, "")).([]any)
	if len(rows) != before+3 {
		t.Fatalf("%d orders listed, want %d", len(rows), before+3)
	}
	newest := rows[0].(map[string]any)
	if newest["order_id"] != ids[2] {
		t.Fatalf("newest first: got %v, want %s", newest["order_id"], ids[2])
	}
	if newest["total_amount"] != "30.01" || newest["status"] != "paid" || newest["shipping_info"] != nil {
		t.Errorf("row as stored: %v", newest)
	}
	items, _ := json.Marshal(newest["items"])
	if string(items) != `[{"price":19.5,"product_id":"prod_0001","quantity":3,"size":"M"}]` {
		t.Errorf("items = %s", items) // encoding/json sorts keys; checked for values only
	}
	raw := string(call(t, app, "GET", list+"?limit=1", "").Body())
	if !strings.Contains(raw, `"items":[{"size":"M","price":19.5,"quantity":3,"product_id":"prod_0001"}]`) {
		t.Errorf("items not in JSONB key order: %s", raw)
	}
	if n := len(data(t, call(t, app, "GET", list+"?limit=2", "")).([]any)); n != 2 {
		t.Errorf("limit=2 listed %d", n)
	}
	if n := len(data(t, call(t, app, "GET", list+"?limit=0", "")).([]any)); n != before+3 {
		t.Errorf("limit=0 means the default 50, listed %d", n)
	}
	if resp := call(t, app, "GET", list+"?limit=-1", ""); resp.StatusCode() != 500 {
		t.Errorf("negative limit: %d", resp.StatusCode())
	}

	failures := map[string]string{
		"unknown user":          `{"user_id":"user_999","items":[],"total_amount":1}`,
		"no items":              `{"user_id":"user_4","total_amount":1}`,
		"no total":              `{"user_id":"user_4","items":[]}`,
		"total not numeric":     `{"user_id":"user_4","items":[],"total_amount":"abc"}`,
		"total overflows":       `{"user_id":"user_4","items":[],"total_amount":123456789}`,
		"status too long":       `{"user_id":"user_4","items":[],"total_amount":1,"status":"` + strings.Repeat("s", 51) + `"}`,
		"NUL in items":          `{"user_id":"user_4","items":["\u0000"],"total_amount":1}`,
		"body is an array":      `[1,2]`,
		"user id is an object ": `{"user_id":{"id":"user_4"},"items":[],"total_amount":1}`,
	}
	for name, body := range failures {
		t.Run(name, func(t *testing.T) {
			resp := call(t, app, "POST", vultr+"/postgres/orders", body)
			if resp.StatusCode() != 500 || decode(t, resp)["error"] != "Failed to create order" {
				t.Errorf("%d %s, want the route's 500", resp.StatusCode(), resp.Body())
			}
		})
	}
	if n := len(data(t, call(t, app, "GET", list, "")).([]any)); n != before+3 {
		t.Errorf("a failed write was stored: %d orders", n)
	}
}

func TestReturnsWriteThenRead(t *testing.T) {
	app := New(Config{Now: fixedClock})
	order := data(t, call(t, app, "POST", vultr+"/postgres/orders", `{"user_id":"user_5","items":[{"product_id":"prod_0009"}],"total_amount":9.99}`)).(map[string]any)["orderId"].(string)
	resp := call(t, app, "POST", vultr+"/postgres/returns", `{"order_id":"`+order+`","product_id":"prod_0009","user_id":"user_5","reason":"Too large"}`)
	d := data(t, resp).(map[string]any)
	if !strings.HasPrefix(d["returnId"].(string), "return_") || d["reason"] != "Too large" {
		t.Fatalf("return answer: %s", resp.Body())
	}
	rows := data(t, call(t, app, "GET", vultr+"/postgres/returns?userId=user_5&productId=prod_0009", "")).([]any)
	if len(rows) != 1 {
		t.Fatalf("%d returns listed", len(rows))
	}
	r := rows[0].(map[string]any)
	if r["return_id"] != d["returnId"] || r["status"] != "pending" || r["order_id"] != order {
		t.Errorf("row: %v", r)
	}
	if rows := data(t, call(t, app, "GET", vultr+"/postgres/returns?productId=prod_0009&userId=user_6", "")).([]any); len(rows) != 0 {
		t.Errorf("another user's filter found %d", len(rows))
	}
	if resp := call(t, app, "POST", vultr+"/postgres/returns", `{"order_id":"`+order+`","user_id":"user_5"}`); resp.StatusCode() != 500 {
		t.Errorf("return without product_id: %d", resp.StatusCode())
	}
}

func TestProfileWriteThenRead(t *testing.T) {
	c := &clock{now: fixedNow}
	app := New(Config{Now: c.Now})
	const path = vultr + "/postgres/users/user_7/profile"
	c.advance(time.Hour)
	if resp := call(t, app, "POST", path, `{"preferences":{"styles":["minimalist"],"fit":"relaxed"}}`); resp.StatusCode() != 200 {
		t.Fatalf("save: %d %s", resp.StatusCode(), resp.Body())
	}
	raw := string(call(t, app, "GET", path, "").Body())
	for _, want := range []string{
		`"preferences":{"fit":"relaxed","styles":["minimalist"]}`, // JSONB key order
		`"body_measurements":{}`,                                  // bodyMeasurements || {}
		`"updated_at":"` + isoTime(c.Now()) + `"`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("profile lacks %s: %s", want, raw)
		}
	}
}

func TestValkeyWriteThenRead(t *testing.T) {
	c := &clock{now: fixedNow}
	app := New(Config{Now: c.Now})
	get := func(path string) (int, string) {
		resp := call(t, app, "GET", vultr+path, "", "X-Request-Id", "r")
		return resp.StatusCode(), string(resp.Body())
	}
	post := func(path, body string) int {
		return call(t, app, "POST", vultr+path, body).StatusCode()
	}
	envelope := func(d string) string {
		return `{"success":true,"data":` + d + `,"requestId":"r","timestamp":"` + isoTime(c.Now()) + `"}`
	}

	t.Run("values stored the app's way", func(t *testing.T) {
		cases := []struct{ value, want string }{
			{`"plain text"`, `{"value":"plain text"}`},
			{`"123"`, `{"value":123}`}, // a string is stored raw, so JSON.parse reads a number back
			{`{"a":[1,2]}`, `{"value":{"a":[1,2]}}`},
			{`0`, `{"value":0}`},
			{`false`, `{"value":false}`},
		}
		for _, tc := range cases {
			if code := post("/valkey/cache/k", `{"value":`+tc.value+`}`); code != 200 {
				t.Fatalf("set %s: %d", tc.value, code)
			}
			if code, body := get("/valkey/cache/k"); code != 200 || body != envelope(tc.want) {
				t.Errorf("after set %s: %d %s", tc.value, code, body)
			}
		}
		for _, v := range []string{`null`, `""`} {
			post("/valkey/cache/k", `{"value":`+v+`}`)
			if code, _ := get("/valkey/cache/k"); code != 404 {
				t.Errorf("value %s reads back as %d, want 404", v, code)
			}
		}
		post("/valkey/cache/k", `{}`)
		if code, _ := get("/valkey/cache/k"); code != 404 {
			t.Errorf("missing value reads back as %d, want 404", code)
		}
	})

	t.Run("TTL", func(t *testing.T) {
		post("/valkey/cache/short", `{"value":"x","ttl":10}`)
		post("/valkey/cache/forever", `{"value":"x"}`)
		post("/valkey/cache/stringttl", `{"value":"x","ttl":"10"}`)
		c.advance(9 * time.Second)
		for _, k := range []string{"short", "forever", "stringttl"} {
			if code, _ := get("/valkey/cache/" + k); code != 200 {
				t.Errorf("%s gone before its TTL", k)
			}
		}
		c.advance(time.Second)
		for k, want := range map[string]int{"short": 404, "stringttl": 404, "forever": 200} {
			if code, _ := get("/valkey/cache/" + k); code != want {
				t.Errorf("%s after 10s: %d, want %d", k, code, want)
			}
		}
		for _, ttl := range []string{`-5`, `1.5`, `"010"`, `"abc"`, `[1]`, `{}`, `true`} {
			if code := post("/valkey/cache/bad", `{"value":1,"ttl":`+ttl+`}`); code != 500 {
				t.Errorf("ttl %s: %d, want 500", ttl, code)
			}
		}
		for _, ttl := range []string{`0`, `null`, `""`, `false`} {
			if code := post("/valkey/cache/nottl", `{"value":1,"ttl":`+ttl+`}`); code != 200 {
				t.Errorf("falsy ttl %s: %d, want 200 (no expiry)", ttl, code)
			}
		}
	})

	t.Run("session and its raw alias", func(t *testing.T) {
		post("/valkey/session/abc", `{"userId":"user_1","sessionId":"abc"}`)
		if _, body := get("/valkey/cache/session:abc"); body != envelope(`{"value":{"userId":"user_1","sessionId":"abc"}}`) {
			t.Errorf("raw alias reads %s", body)
		}
		c.advance(86399 * time.Second)
		call(t, app, "POST", vultr+"/valkey/session/abc/touch", "")
		c.advance(86399 * time.Second)
		if code, _ := get("/valkey/session/abc"); code != 200 {
			t.Errorf("touched session expired early: %d", code)
		}
		c.advance(2 * time.Second)
		if code, _ := get("/valkey/session/abc"); code != 404 {
			t.Errorf("session outlived its 24 h: %d", code)
		}
		post("/valkey/cache/session:zero", `{"value":0}`)
		if code, _ := get("/valkey/session/zero"); code != 404 {
			t.Errorf("a falsy session reads as %d, want 404 (the route checks !session)", code)
		}
		resp := call(t, app, "DELETE", vultr+"/valkey/session/none", "")
		if d := decode(t, resp); d["success"] != false {
			t.Errorf("deleting no session: %s", resp.Body())
		}
	})

	t.Run("typed caches store the object shown", func(t *testing.T) {
		post("/valkey/cache/conversation/u1", `{"context":{"turns":2}}`)
		post("/valkey/cache/recommendations/u1", `{"recommendations":["p1","p2"]}`)
		post("/valkey/cache/preferences/u1", `{"preferences":{"fit":"slim"},"ttl":5}`)
		for path, want := range map[string]string{
			"/valkey/cache/conversation:u1":    `{"value":{"context":{"turns":2}}}`,
			"/valkey/cache/recommendations:u1": `{"value":{"recommendations":["p1","p2"]}}`,
			"/valkey/cache/preferences:u1":     `{"value":{"preferences":{"fit":"slim"}}}`,
			"/valkey/cache/conversation/u1":    `{"context":{"turns":2}}`,
			"/valkey/cache/recommendations/u1": `{"recommendations":["p1","p2"]}`,
		} {
			if _, body := get(path); body != envelope(want) {
				t.Errorf("%s = %s, want data %s", path, body, want)
			}
		}
		c.advance(6 * time.Second)
		if code, _ := get("/valkey/cache/preferences/u1"); code != 404 {
			t.Errorf("preferences outlived ttl 5: %d", code)
		}
		post("/valkey/cache/conversation/u2", `{}`)
		if _, body := get("/valkey/cache/conversation/u2"); body != envelope(`{}`) {
			t.Errorf("conversation without context = %s, want {}", body)
		}
	})

	t.Run("batch", func(t *testing.T) {
		resp := call(t, app, "POST", vultr+"/valkey/batch", `{"operations":[
			{"type":"set","key":"b1","value":{"x":1},"ttl":60},
			{"type":"get","key":"b1"},
			{"type":"get","key":"missing"},
			{"type":"set","key":"b2","value":1,"ttl":-1},
			{"type":"flush","key":"b1"},
			{"type":"delete","key":"b1"},
			{"type":"get","key":"b1"}]}`, "X-Request-Id", "r")
		want := envelope(`{"results":[{"success":true,"key":"b1"},{"success":true,"key":"b1","value":{"x":1}},` +
			`{"success":true,"key":"missing","value":null},{"success":false,"key":"b2","error":"Failed to set cache value"},` +
			`{"success":true,"key":"b1"},{"success":true,"key":"b1","value":null}]}`)
		if string(resp.Body()) != want {
			t.Errorf("batch\n got %s\nwant %s", resp.Body(), want)
		}
		if resp := call(t, app, "POST", vultr+"/valkey/batch", `{"operations":[null]}`); resp.StatusCode() != 500 {
			t.Errorf("null operation: %d", resp.StatusCode())
		}
	})
}

func TestMemoriesWriteThenRead(t *testing.T) {
	c := &clock{now: fixedNow}
	app := New(Config{Now: c.Now})
	post := func(path, body string) map[string]any {
		resp := call(t, app, "POST", raindrop+path, body)
		if resp.StatusCode() != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode(), resp.Body())
		}
		return decode(t, resp)
	}
	texts := func(v map[string]any) []string {
		var out []string
		for _, r := range v["results"].([]any) {
			out = append(out, r.(map[string]any)["text"].(string))
		}
		return out
	}

	stored := post("/store-memory", `{"userId":"ann","text":"Loves LINEN shirts","metadata":{"source":"chat"}}`)
	entry := stored["entry"].(map[string]any)
	if entry["type"] != "working" || entry["userId"] != "ann" || stored["source"] != "mock" {
		t.Fatalf("entry: %v", stored)
	}
	if !regexp.MustCompile(`^\d{13}-\d{1,3}$`).MatchString(entry["id"].(string)) {
		t.Errorf("id %q is not <ms>-<n>", entry["id"])
	}
	def := post("/store-memory", `{"text":"default user"}`)["entry"].(map[string]any)
	if def["userId"] != "demo_user" || def["type"] != "working" || fmt.Sprint(def["metadata"]) != "map[]" {
		t.Errorf("server defaults not applied: %v", def)
	}
	c.advance(time.Millisecond)
	batch := post("/batch-store-memory", `{"memories":[{"userId":"ann","text":"linen trousers"},{"userId":"ann","text":"wool coat","type":"episodic"}]}`)
	if res := batch["results"].([]any); len(res) != 2 || res[0].(map[string]any)["id"] == res[1].(map[string]any)["id"] {
		t.Fatalf("batch results: %v", batch)
	}

	if got := texts(post("/search-memory", `{"userId":"ann","q":"linen"}`)); strings.Join(got, "|") != "linen trousers|Loves LINEN shirts" {
		t.Errorf("search linen, newest first = %q", got)
	}
	if got := texts(post("/search-memory", `{"userId":"ann","topK":1}`)); strings.Join(got, "|") != "wool coat" {
		t.Errorf("topK 1 = %q", got)
	}
	if got := texts(post("/search-memory", `{"userId":"bob"}`)); len(got) != 0 {
		t.Errorf("another user's memories: %q", got)
	}

	updated := post("/update-memory", `{"userId":"ann","id":"`+entry["id"].(string)+`","text":"Loves silk","type":"semantic"}`)["entry"].(map[string]any)
	if updated["text"] != "Loves silk" || updated["type"] != "semantic" || fmt.Sprint(updated["metadata"]) != "map[source:chat]" {
		t.Errorf("updated entry: %v", updated)
	}
	if silk := post("/search-memory", `{"userId":"ann","q":"silk"}`); len(texts(silk)) != 1 {
		t.Errorf("updated text not found")
	}
	st := decode(t, call(t, app, "GET", raindrop+"/memory-stats?userId=ann", ""))["stats"].(map[string]any)
	if st["total"] != 3.0 || fmt.Sprint(st["byType"]) != "map[episodic:1 semantic:1 working:1]" || st["oldest"] == nil || st["newest"] == nil {
		t.Errorf("stats: %v", st)
	}

	exp := call(t, app, "GET", raindrop+"/export-memory?userId=ann", "")
	wantDisposition := `attachment; filename="style-shepherd-memories-ann-` + strings.ReplaceAll(isoTime(c.Now())[:19], ":", "-") + `.json"`
	if got := header(exp, "Content-Disposition"); got != wantDisposition {
		t.Errorf("Content-Disposition = %q, want %q", got, wantDisposition)
	}
	if d := data(t, exp).(map[string]any); d["count"] != 3.0 || d["userId"] != "ann" {
		t.Errorf("export: %v", d)
	}
	if resp := call(t, app, "GET", raindrop+"/export-memory?userId=%E2%9C%93", ""); resp.StatusCode() != 500 {
		t.Errorf("a user id Node cannot put in a header: %d", resp.StatusCode())
	}

	if d := post("/delete-memory", `{"userId":"ann","id":"`+entry["id"].(string)+`"}`); d["deleted"] != 1.0 {
		t.Errorf("delete: %v", d)
	}
	if d := post("/clear-memory", `{"userId":"ann"}`); d["deleted"] != 2.0 || d["total"] != 2.0 {
		t.Errorf("clear: %v", d)
	}
	if st := decode(t, call(t, app, "GET", raindrop+"/memory-stats?userId=ann", ""))["stats"].(map[string]any); st["total"] != 0.0 || st["oldest"] != nil {
		t.Errorf("stats after clear: %v", st)
	}
	resp := call(t, app, "POST", raindrop+"/update-memory", `{"userId":"ann","id":"gone","text":"x"}`)
	if resp.StatusCode() != 404 || decode(t, resp)["message"] != "Memory not found" {
		t.Errorf("update of a deleted memory: %d %s", resp.StatusCode(), resp.Body())
	}
}

func TestMemoryIDsUnique(t *testing.T) {
	app := New(Config{Now: fixedClock}) // one millisecond for every write
	var b strings.Builder
	b.WriteString(`{"memories":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"text":"m%d"}`, i)
	}
	b.WriteString(`]}`)
	seen := map[string]bool{}
	for range 12 { // 1200 ids in one millisecond: more than the 1000 random ones
		for _, r := range decode(t, call(t, app, "POST", raindrop+"/batch-store-memory", b.String()))["results"].([]any) {
			id := r.(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("id %s given twice", id)
			}
			seen[id] = true
		}
	}
}
