package shepherd

import (
	"fmt"
	"strings"
	"testing"
)

// TestValidationErrors checks the Raindrop routes' VALIDATION_ERROR
// answers field by field, with zod's messages.
func TestValidationErrors(t *testing.T) {
	app := New(Config{Now: fixedClock})
	many := make([]string, 101)
	for i := range many {
		many[i] = `{"text":"x"}`
	}
	cases := []struct {
		name, method, path, body string
		want                     []string // "field: message"
		message                  string
	}{
		{"text missing", "POST", "/store-memory", `{}`, []string{"text: Required"}, ""},
		{"text empty", "POST", "/store-memory", `{"text":""}`, []string{"text: Text is required"}, ""},
		{"no body at all", "POST", "/store-memory", "", []string{"text: Required"}, ""},
		{"wrong types, all reported", "POST", "/store-memory", `{"userId":5,"type":null,"text":true,"metadata":"x"}`,
			[]string{"userId: Expected string, received number", "type: Expected string, received null", "text: Expected string, received boolean", "metadata: Expected object, received string"}, ""},
		{"metadata array", "POST", "/store-memory", `{"text":"a","metadata":[]}`, []string{"metadata: Expected object, received array"}, ""},
		{"body is an array", "POST", "/store-memory", `[{"text":"a"}]`, []string{": Expected object, received array"}, ""},
		{"topK zero", "POST", "/search-memory", `{"topK":0}`, []string{"topK: Number must be greater than 0"}, ""},
		{"topK fraction", "POST", "/search-memory", `{"topK":2.5}`, []string{"topK: Expected integer, received float"}, ""},
		{"topK negative fraction", "POST", "/search-memory", `{"topK":-1.5}`, []string{"topK: Expected integer, received float", "topK: Number must be greater than 0"}, ""},
		{"topK too big", "POST", "/search-memory", `{"topK":10001}`, []string{"topK: Number must be less than or equal to 10000"}, ""},
		{"topK as string", "POST", "/search-memory", `{"topK":"5"}`, []string{"topK: Expected number, received string"}, ""},
		{"q not a string", "POST", "/search-memory", `{"q":{}}`, []string{"q: Expected string, received object"}, ""},
		{"delete without id", "POST", "/delete-memory", `{"id":""}`, []string{"id: Memory ID is required"}, ""},
		{"update without id and text", "POST", "/update-memory", `{"type":3}`, []string{"id: Required", "text: Required", "type: Expected string, received number"}, ""},
		{"clear with bad user", "POST", "/clear-memory", `{"userId":[]}`, []string{"userId: Expected string, received array"}, ""},
		{"batch missing", "POST", "/batch-store-memory", `{}`, []string{"memories: Required"}, ""},
		{"batch empty", "POST", "/batch-store-memory", `{"memories":[]}`, []string{"memories: Array must contain at least 1 element(s)"}, ""},
		{"batch too long", "POST", "/batch-store-memory", `{"memories":[` + strings.Join(many, ",") + `]}`, []string{"memories: Array must contain at most 100 element(s)"}, ""},
		{"batch item paths", "POST", "/batch-store-memory", `{"memories":[{"text":"ok"},{"text":""},7]}`,
			[]string{"memories.1.text: String must contain at least 1 character(s)", "memories.2: Expected object, received number"}, ""},
		{"query user repeated", "GET", "/memory-stats?userId=a&userId=b", "", []string{"userId: Expected string, received array"}, "Invalid query parameters"},
		{"export user repeated", "GET", "/export-memory?userId=a&userId=b", "", []string{"userId: Expected string, received array"}, "Invalid query parameters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, app, tc.method, raindrop+tc.path, tc.body)
			if resp.StatusCode() != 400 {
				t.Fatalf("status = %d: %s", resp.StatusCode(), resp.Body())
			}
			v := decode(t, resp)
			e := v["error"].(map[string]any)
			wantMsg := tc.message
			if wantMsg == "" {
				wantMsg = "Invalid request body"
			}
			if e["code"] != "VALIDATION_ERROR" || e["message"] != wantMsg || e["statusCode"] != 400.0 || e["timestamp"] != "2026-03-04T05:06:07.890Z" {
				t.Errorf("error head: %v", e)
			}
			if v["requestId"] == nil || v["timestamp"] == nil {
				t.Errorf("no requestId or timestamp added: %s", resp.Body())
			}
			var got []string
			for _, f := range e["details"].(map[string]any)["fields"].([]any) {
				m := f.(map[string]any)
				got = append(got, fmt.Sprintf("%s: %s", m["field"], m["message"]))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("fields\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	if st := app.memories.stats("demo_user"); st.members[0].val != 0.0 {
		t.Errorf("a refused write was stored: %s", toJSONText(st))
	}
}

// TestValidationStripsAndDefaults checks what a valid body becomes:
// unknown keys dropped, the server's defaults filled in.
func TestValidationStripsAndDefaults(t *testing.T) {
	app := New(Config{Now: fixedClock})
	resp := call(t, app, "POST", raindrop+"/store-memory", `{"text":"hi","extra":1,"metadata":{"k":[1]}}`, "X-Request-Id", "r")
	v := decode(t, resp)
	entry := v["entry"].(map[string]any)
	if _, has := entry["extra"]; has || entry["userId"] != "demo_user" || entry["type"] != "working" {
		t.Errorf("entry: %v", entry)
	}
	if !strings.Contains(string(resp.Body()), `"metadata":{"k":[1]}`) {
		t.Errorf("metadata changed: %s", resp.Body())
	}
	// A userId of "" stays "" in the body (zod's default is for undefined only)…
	call(t, app, "POST", raindrop+"/store-memory", `{"userId":"","text":"empty user"}`)
	if n := len(app.memories.search("", "", 10)); n != 1 {
		t.Errorf(`memories of user "": %d`, n)
	}
	// …but an empty query userId falls back to demo_user (the route's ||).
	st := decode(t, call(t, app, "GET", raindrop+"/memory-stats?userId=", ""))["stats"].(map[string]any)
	if st["total"] != 1.0 {
		t.Errorf("memory-stats?userId= read %v memories, want demo_user's 1", st["total"])
	}
}
