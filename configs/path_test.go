package configs

import (
	"reflect"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		path string
		want []Segment
		err  string
	}{
		{path: "/", want: nil},
		{path: "/api/vultr/health", want: []Segment{{Literal: "api"}, {Literal: "vultr"}, {Literal: "health"}}},
		{path: "/api/vultr/", want: []Segment{{Literal: "api"}, {Literal: "vultr"}}},
		{path: "/users/{userId}/profile", want: []Segment{{Literal: "users"}, {Param: "userId"}, {Literal: "profile"}}},
		{path: "/a/{x}/{y_2}", want: []Segment{{Literal: "a"}, {Param: "x"}, {Param: "y_2"}}},
		{path: "/cache/session:x", want: []Segment{{Literal: "cache"}, {Literal: "session:x"}}},
		{path: "", err: `path "" must start with /`},
		{path: "api/x", err: `path "api/x" must start with /`},
		{path: "/a//b", err: "empty segment (//)"},
		{path: "//", err: "empty segment (//)"},
		{path: "/a{b}/c", err: `segment "a{b}": a parameter must be a whole segment`},
		{path: "/a/{b}c", err: `segment "{b}c": a parameter must be a whole segment`},
		{path: "/a/{b", err: `segment "{b": a parameter must be a whole segment`},
		{path: "/a/b}", err: `segment "b}": a parameter must be a whole segment`},
		{path: "/a/{}", err: `segment "{}": bad parameter name`},
		{path: "/a/{1x}", err: `segment "{1x}": bad parameter name`},
		{path: "/a/{x-y}", err: `segment "{x-y}": bad parameter name`},
		{path: "/a/{x}{y}", err: `segment "{x}{y}": bad parameter name`},
		{path: "/a/{x}/b/{x}", err: "parameter {x} appears twice"},
		{path: "/a?b=1", err: `has "?"`},
		{path: "/a/*", err: `has "*"`},
		{path: "/a b", err: `has " "`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := ParsePath(tt.path)
			if wantErr(t, err, tt.err) {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParsePath(%q) = %#v, want %#v", tt.path, got, tt.want)
			}
		})
	}
}

// TestParsePathLimits checks that the bounds themselves are allowed: the
// router takes MaxPathSegments segments and MaxPathParams parameters.
func TestParsePathLimits(t *testing.T) {
	for _, p := range []string{
		"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/i/j/k/l/m/n/o/p",
		"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/i/j/k/l/m/n/o/p/",
	} {
		segs, err := ParsePath(p)
		if err != nil {
			t.Fatalf("ParsePath(%q): %v", p, err)
		}
		if len(segs) != MaxPathSegments || len(pathParams(segs)) != MaxPathParams {
			t.Fatalf("ParsePath(%q): %d segments, %d parameters", p, len(segs), len(pathParams(segs)))
		}
	}
}

// TestLiteralPathsThatMatch: what the decoded, dot-resolved request path can
// hold is accepted: a lone % (a request's %25), a prefix ending in . (which
// takes /.env) or in a name's start. A route that leaves its later
// neighbour something (another method, a longer path) is not "never matched".
func TestLiteralPathsThatMatch(t *testing.T) {
	src := "upstream: {url: http://127.0.0.1:3001}\nroutes:\n" +
		"  - {name: promo, match: {path: /promo/50%}, pass: {}}\n" +
		"  - {name: dotfiles, match: {path_prefix: /.}, pass: {}}\n" +
		"  - {name: static, match: {path_prefix: /static/app.}, pass: {}}\n" +
		"  - {name: read, match: {method: GET, path: \"/u/{id}\"}, pass: {}}\n" +
		"  - {name: write, match: {method: POST, path: \"/u/{id}\"}, pass: {}}\n" +
		"  - {name: any, match: {path: \"/u/me\"}, pass: {}}\n" +
		"  - {name: deeper, match: {path: \"/u/{id}/x\"}, pass: {}}\n" +
		"  - {name: all, match: {path_prefix: /api/}, pass: {}}\n"
	if _, err := Parse("ok.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
}
