package shepherd

import (
	"math"
	"strings"
	"testing"
)

// TestJSONRoundTrip checks JSON.stringify(JSON.parse(in)) as Node gives it.
func TestJSONRoundTrip(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{ "a" : 1 , "b" : [ true, false, null ] }`, `{"a":1,"b":[true,false,null]}`},
		{`[1.0, 1e2, 1E-2, -0, 0.1, 123456789012345678901]`, `[1,100,0.01,0,0.1,123456789012345680000]`},
		{`[1e21, 1.5e-7, 0.000001, 1e-7, 2e300, 1e999]`, `[1e+21,1.5e-7,0.000001,1e-7,2e+300,null]`},
		{`[999999999999999900000, 100000000000000000000]`, `[999999999999999900000,100000000000000000000]`},
		{`{"b":1,"2":2,"a":3,"1":4,"01":5,"4294967295":6,"4294967294":7}`, `{"1":4,"2":2,"4294967294":7,"b":1,"a":3,"01":5,"4294967295":6}`},
		{`{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{`"\u003c\u003e\u0026 \u2028 \/ \u00e9 é"`, `"<>& ` + "\u2028" + ` / é é"`},
		{`"\u0001\u001f\b\f\n\r\t\"\\"`, `"\u0001\u001f\b\f\n\r\t\"\\"`},
		{`"\ud83d\ude00 \ud800 \udc00x"`, `"😀 \ud800 \udc00x"`},
		{"\"bad \xff byte\"", `"bad ` + "\uFFFD" + ` byte"`},
		{`{}`, `{}`},
		{`[]`, `[]`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			v, err := parseJSON([]byte(tc.in))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := toJSONText(v); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestJSONSyntaxErrors(t *testing.T) {
	cases := []string{
		``, `{`, `{"a"}`, `{"a":}`, `{a:1}`, `[1,]`, `{"a":1,}`, `[1 2]`, `01`, `1.`, `.5`, `-`, `1e`,
		`"unterminated`, "\"tab\tinside\"", `"\x"`, `"\u12"`, `tru`, `nul`, `[1]x`, `{} {}`,
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
	}
	for _, in := range cases {
		t.Run(in, func(t *testing.T) {
			if v, err := parseJSON([]byte(in)); err == nil {
				t.Errorf("parseJSON(%q) = %v, want an error", in, v)
			}
		})
	}
	deep := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	if _, err := parseJSON([]byte(deep)); err != nil {
		t.Errorf("nesting at the limit refused: %v", err)
	}
}

func TestJSValues(t *testing.T) {
	obj := newObject("k", "v")
	cases := []struct {
		name   string
		v      any
		truthy bool
		str    string
		typ    string
	}{
		{"null", nil, false, "null", "null"},
		{"false", false, false, "false", "boolean"},
		{"zero", 0.0, false, "0", "number"},
		{"NaN", math.NaN(), false, "NaN", "nan"},
		{"one half", 0.5, true, "0.5", "number"},
		{"big", 1e21, true, "1e+21", "number"},
		{"empty string", "", false, "", "string"},
		{"string", "x", true, "x", "string"},
		{"array", []any{1.0, nil, "a"}, true, "1,,a", "array"},
		{"object", obj, true, "[object Object]", "object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := truthy(tc.v, true); got != tc.truthy {
				t.Errorf("truthy = %v", got)
			}
			if got := jsString(tc.v); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			if got := typeName(tc.v, true); got != tc.typ {
				t.Errorf("type = %q, want %q", got, tc.typ)
			}
		})
	}
	if truthy(nil, false) || typeName(nil, false) != "undefined" {
		t.Errorf("a missing value is not undefined")
	}
}

func TestObjectLarge(t *testing.T) {
	// Past indexAfter the object keeps an index; behaviour must not change.
	o := &object{}
	for i := range 100 {
		o.set("k"+strings.Repeat("x", i), float64(i))
	}
	o.set("k", -1.0)
	if v, _ := o.get("k"); v != -1.0 || len(o.members) != 100 {
		t.Fatalf("set over an existing key: %v, %d members", v, len(o.members))
	}
	if v, ok := o.get("kxx"); !ok || v != 2.0 {
		t.Fatalf("get = %v %v", v, ok)
	}
	if o.has("nope") {
		t.Fatalf("has a key it was never given")
	}
}
