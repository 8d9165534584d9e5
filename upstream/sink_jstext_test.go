package upstream

import (
	"bytes"
	"strings"
	"testing"
)

// TestAppText: the text the app would store, as Node 20 computes it with
// `typeof v === "string" ? v : JSON.stringify(v)` after JSON.parse.
func TestAppText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"string stored as its text", `"hello"`, `hello`},
		{"string escapes decoded", `"say \"hi\"\n"`, "say \"hi\"\n"},
		{"string unicode escapes", `"\u00e9\/\u2028"`, "é/\u2028"},
		{"string of invalid UTF-8", "\"a\xffb\"", "a\ufffdb"},
		{"missing value", ``, ``},
		{"object compacted", `{ "a" : 1.50, "b" : [ true , null ] }`, `{"a":1.5,"b":[true,null]}`},
		{"integer-like keys first", `{"b":1,"a":2,"10":3,"2":4,"01":5}`, `{"2":4,"10":3,"b":1,"a":2,"01":5}`},
		{"2^32-1 is not an index", `{"4294967295":1,"4294967294":2}`, `{"4294967294":2,"4294967295":1}`},
		{"last duplicate wins in first place", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{"only JSON.stringify's escapes", `["\u001f<>&"]`, `["\u001f<>&"]`},
		{"integer float", `1.0`, `1`},
		{"negative zero", `-0`, `0`},
		{"exponent from 1e21", `1e21`, `1e+21`},
		{"big integer rounded", `123456789012345678901`, `123456789012345680000`},
		{"small decimal", `0.000001`, `0.000001`},
		{"exponent below 1e-6", `1e-7`, `1e-7`},
		{"overflow is null", `1e400`, `null`},
		{"surrogate pair", `"\ud83d\ude00 ok"`, "😀 ok"},
		// Node keeps a lone surrogate in a string and JSON.stringify
		// writes it back escaped; stored as text, it is U+FFFD.
		{"lone surrogate", `["\ud800x"]`, `["\ud800x"]`},
		{"lone surrogates in keys and values", `{"a":"\ud83d","\udc00k":1,"b":"\ud83d\ude00","c":"\udc00\ud800"}`,
			`{"a":"\ud83d","\udc00k":1,"b":"😀","c":"\udc00\ud800"}`},
		{"lone surrogate stored as text", `"\ud800x"`, "\ufffdx"},
		{"invalid UTF-8 in an object", "{\"k\":\"a\xffb\\n\"}", "{\"k\":\"a\ufffdb\\n\"}"},
		{"nested objects reordered", `[{"b":{"1":1,"0":0},"a":[{"z":1,"z":2}]}]`, `[{"b":{"0":0,"1":1},"a":[{"z":2}]}]`},
		{"16 digits go through float64", `12345678901234567`, `12345678901234568`},
		{"15 digits kept", `-999999999999999`, `-999999999999999`},
		{"numbers in every form", `[-0.0, 0.1e1, 5E-7, 1e+2]`, `[0,1,5e-7,100]`},
		{"null", `null`, `null`},
		{"false", ` false `, `false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appText([]byte(tt.in))
			if err != nil || got != tt.want {
				t.Fatalf("appText(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestAppTextRefusesBadJSON(t *testing.T) {
	bad := []string{`{`, `[1,]`, `{"a"}`, `"unterminated`, `1 2`, `{"a":1}}`, `nul`, `]`, `01`, `-`, `1.`, `1e`,
		`[1 2]`, `{"a" 1}`, "\"a\tb\"", `"\x"`, `"\u12"`, `{1:2}`, strings.Repeat("[", maxDepth+2)}
	for _, in := range bad {
		t.Run(in[:min(len(in), 20)], func(t *testing.T) {
			if got, err := appText([]byte(in)); err == nil {
				t.Fatalf("appText(%s) = %q, want an error", in, got)
			}
		})
	}
}

// FuzzAppText: no input panics, and the JSON text written for a value
// other than a string is its own canonical form.
func FuzzAppText(f *testing.F) {
	for _, seed := range []string{`"a"`, `{"b":[1.0,{"2":null}],"a":"\u00e9"}`, `1e21`, `[`, `{"a":1,"a":2}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := appText(in)
		if err != nil {
			return
		}
		if trimmed := bytes.TrimSpace(in); len(trimmed) == 0 || trimmed[0] == '"' {
			return // a string's text is not JSON
		}
		again, err := appText([]byte(out))
		if err != nil || again != out {
			t.Fatalf("appText(%q) = %q, which gives %q, %v", in, out, again, err)
		}
	})
}

func BenchmarkAppText(b *testing.B) {
	for _, bm := range []struct{ name, in string }{
		{"string", `"a conversation context of a few words"`},
		{"object", `{"userId":"user_1","sessionId":"s1","preferences":{"sizes":["M","L"],"budget":120.5},"createdAt":"2024-05-01T12:00:00.000Z"}`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			in := []byte(bm.in)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := appText(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBytesNotUTF8ReadAsNodeReadsThem: a character cut short is one U+FFFD
// to Node (Buffer#toString, express.json()), not one a byte, so a Valkey
// set writes the key and value the app would, and an answer re-printed
// reads as the app's. A stored value that is not the app's JSON and not
// UTF-8 is answered as ioredis decodes it. The answers are node v20's.
func TestBytesNotUTF8ReadAsNodeReadsThem(t *testing.T) {
	in := []byte("\"\xe2\x82A\xf0\x9f\x98\"")
	if got, err := AppendNodeJSON(nil, in); err != nil || string(got) != "\"\uFFFDA\uFFFD\"" {
		t.Errorf("AppendNodeJSON(%q) = %q, %v; want %q", in, got, err, "\"\uFFFDA\uFFFD\"")
	}
	ops, err := ParseValkeyOps([]byte("{\"operations\":[{\"type\":\"set\",\"key\":\"k\xe2\x82\",\"value\":\"v\xf0\x9f\x98\"}]}"))
	if err != nil {
		t.Fatal(err)
	}
	if op := ops.ops[0]; op.key != "k\uFFFD" || op.text != "v\uFFFD" {
		t.Errorf("key %q, text %q; want %q, %q", op.key, op.text, "k\uFFFD", "v\uFFFD")
	}
	for _, tc := range []struct{ text, want string }{
		{"\xffa", "\"\uFFFDa\""},
		{"\xed\xa0\x80a", "\"\uFFFD\uFFFD\uFFFDa\""}, // not the marker of a lone surrogate
	} {
		if got := appendStoredValue(nil, tc.text, true); string(got) != tc.want {
			t.Errorf("appendStoredValue(%q) = %q; want %q", tc.text, got, tc.want)
		}
	}
}

// BenchmarkAppendNodeJSON: an order's body as the front end posts it, and
// its items, re-printed as the app prints them (the postgres batch answer
// and JSON column).
func BenchmarkAppendNodeJSON(b *testing.B) {
	for _, bm := range []struct{ name, in string }{
		{"order", `{"success":true,"data":{"user_id":"user_17","items":[{"product_id":"prod_42","quantity":1,"price":54.99,"size":"M"}],"total_amount":54.99,"status":"pending","order_id":"order_1764160000000_abc123def","created_at":"2026-11-26T12:00:00.000Z"}}`},
		{"items", `[{"product_id":"prod_42","quantity":1,"price":54.99,"size":"M"}]`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			in := []byte(bm.in)
			out := make([]byte, 0, 2*len(in))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := AppendNodeJSON(out[:0], in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
