package shepherd

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

// TestBodyParsing checks express.json and express.urlencoded as the app
// configures them: what gets parsed, and the refusals.
func TestBodyParsing(t *testing.T) {
	app := New(Config{Now: fixedClock})
	big := `{"q":"` + strings.Repeat("a", appBodyLimit-8) + `"}` // exactly 10 MB
	cases := []struct {
		name, path, body string
		hdr              []string
		status           int
		code             string // error code, or "" for a success
	}{
		{"JSON object", "/store-memory", `{"text":"a"}`, nil, 200, ""},
		{"leading whitespace", "/store-memory", " \n\t{\"text\":\"a\"}", nil, 200, ""},
		{"byte order mark", "/store-memory", "\xEF\xBB\xBF{\"text\":\"a\"}", nil, 200, ""},
		{"charset utf-8", "/store-memory", `{"text":"a"}`, []string{"Content-Type", "application/json; charset=UTF-8"}, 200, ""},
		{"malformed", "/store-memory", `{"text":`, nil, 400, "ENTITY_PARSE_FAILED"},
		{"top-level string (strict)", "/store-memory", `"text"`, nil, 400, "ENTITY_PARSE_FAILED"},
		{"top-level number (strict)", "/store-memory", `42`, nil, 400, "ENTITY_PARSE_FAILED"},
		{"trailing garbage", "/store-memory", `{"text":"a"} x`, nil, 400, "ENTITY_PARSE_FAILED"},
		{"malformed on an unknown route", "/nothing-here", `{`, nil, 400, "ENTITY_PARSE_FAILED"},
		{"latin-1 charset", "/store-memory", `{"text":"a"}`, []string{"Content-Type", "application/json; charset=latin1"}, 415, "CHARSET_UNSUPPORTED"},
		{"text/plain is not read", "/store-memory", `{"text":"a"}`, []string{"Content-Type", "text/plain"}, 400, "VALIDATION_ERROR"},
		{"vendor JSON type is not read", "/store-memory", `{"text":"a"}`, []string{"Content-Type", "application/vnd.api+json"}, 400, "VALIDATION_ERROR"},
		{"urlencoded", "/store-memory", `userId=u1&text=hello+world%21`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 200, ""},
		{"urlencoded numbers are strings", "/search-memory", `topK=5`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, "VALIDATION_ERROR"},
		{"gzip body", "/store-memory", gzipped(`{"text":"zipped"}`), []string{"Content-Encoding", "gzip"}, 200, ""},
		{"corrupt gzip", "/store-memory", "not gzip", []string{"Content-Encoding", "gzip"}, 400, "ENTITY_VERIFY_FAILED"},
		{"unknown content encoding", "/store-memory", `{"text":"a"}`, []string{"Content-Encoding", "br"}, 415, "ENCODING_UNSUPPORTED"},
		{"exactly 10 MB", "/search-memory", big, nil, 200, ""},
		{"one byte over 10 MB", "/search-memory", big + " ", nil, 413, "ENTITY_TOO_LARGE"},
		{"over 10 MB once inflated", "/search-memory", gzipped(big + " "), []string{"Content-Encoding", "gzip"}, 413, "ENTITY_TOO_LARGE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, app, "POST", raindrop+tc.path, tc.body, tc.hdr...)
			if resp.StatusCode() != tc.status {
				t.Fatalf("status = %d, want %d: %.300s", resp.StatusCode(), tc.status, resp.Body())
			}
			v := decode(t, resp)
			if tc.code == "" {
				if v["success"] != true {
					t.Errorf("not a success: %.300s", resp.Body())
				}
				return
			}
			e, _ := v["error"].(map[string]any)
			if e["code"] != tc.code || e["statusCode"] != float64(tc.status) || e["message"] == "" || v["requestId"] == nil {
				t.Errorf("error = %.300s, want code %s", resp.Body(), tc.code)
			}
		})
	}
	t.Run("urlencoded fields arrive", func(t *testing.T) {
		hits := app.memories.search("u1", "hello world!", 5)
		if len(hits) != 1 {
			t.Fatalf("urlencoded memory not stored as text %q", "hello world!")
		}
	})
	t.Run("inflated body arrives", func(t *testing.T) {
		if len(app.memories.search("demo_user", "zipped", 5)) != 1 {
			t.Fatalf("gzip-encoded memory not stored")
		}
	})
}

// TestServerLimits checks the limits the server enforces before the app
// runs, bodies over 64 MB and oversized headers, and that a chunked body
// is read.
func TestServerLimits(t *testing.T) {
	s := serve(t, Config{Now: fixedClock})
	huge := "POST " + raindrop + "/store-memory HTTP/1.1\r\nHost: o\r\nContent-Type: application/json\r\nContent-Length: 70000000\r\n\r\n"
	resp := s.raw(t, huge, false)
	if resp.StatusCode() != 413 {
		t.Fatalf("70 MB declared: %d %s", resp.StatusCode(), resp.Body())
	}
	e, _ := decode(t, resp)["error"].(map[string]any)
	if e["code"] != "ENTITY_TOO_LARGE" || string(resp.Header.Peek("X-Frame-Options")) != "SAMEORIGIN" {
		t.Errorf("413 is not the app's: %s", resp.Body())
	}
	if n := s.app.Stats().Routes["memory.store"]; n != 1 {
		t.Errorf("the refused request was counted %d times under memory.store", n)
	}

	echoHuge := "POST /__origin/echo HTTP/1.1\r\nHost: o\r\nContent-Length: 70000000\r\n\r\n"
	if resp := s.raw(t, echoHuge, false); resp.StatusCode() != 413 {
		t.Errorf("70 MB to echo: %d", resp.StatusCode())
	}

	chunked := "POST " + raindrop + "/store-memory HTTP/1.1\r\nHost: o\r\nContent-Type: application/json\r\n" +
		"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n7\r\n{\"text\"\r\n9\r\n:\"chunk\"}\r\n0\r\n\r\n"
	if resp := s.raw(t, chunked, false); resp.StatusCode() != 200 {
		t.Errorf("chunked JSON body: %d %s", resp.StatusCode(), resp.Body())
	}

	big := rawRequest("GET", "/", "", "X-Big", strings.Repeat("h", headerLimit))
	if resp := s.raw(t, big, false); resp.StatusCode() != 431 {
		t.Errorf("16 KB header: %d, want 431", resp.StatusCode())
	}
	fine := rawRequest("GET", "/", "", "X-Big", strings.Repeat("h", headerLimit/2))
	if resp := s.raw(t, fine, false); resp.StatusCode() != 200 {
		t.Errorf("8 KB header: %d, want 200", resp.StatusCode())
	}
}
