package configs

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		in   string
		want Template
		err  string
	}{
		{in: "", want: nil},
		{in: "products", want: Template{{Literal: "products"}}},
		{in: "user:{path.userId}", want: Template{{Literal: "user:"}, {Source: SourcePath, Name: "userId"}}},
		{in: "{body.ttl=0}", want: Template{{Source: SourceBody, Name: "ttl", Default: "0", HasDefault: true}}},
		{in: "{query.q=}", want: Template{{Source: SourceQuery, Name: "q", HasDefault: true}}},
		{in: "{body.status||pending}", want: Template{{Source: SourceBody, Name: "status", Default: "pending", HasDefault: true, OrDefault: true}}},
		{in: "{body.note||a=b}", want: Template{{Source: SourceBody, Name: "note", Default: "a=b", HasDefault: true, OrDefault: true}}},
		{in: "{query.q=a||b}", want: Template{{Source: SourceQuery, Name: "q", Default: "a||b", HasDefault: true}}},
		{in: "{query.sep=||}", want: Template{{Source: SourceQuery, Name: "sep", Default: "||", HasDefault: true}}},
		{in: "{body.user.id}", want: Template{{Source: SourceBody, Name: "user.id"}}},
		{in: "{body.items.0}", want: Template{{Source: SourceBody, Name: "items.0"}}},
		{in: "{body}", want: Template{{Source: SourceBody}}},
		{in: "{header.X-Tenant=none}", want: Template{{Source: SourceHeader, Name: "X-Tenant", Default: "none", HasDefault: true}}},
		{in: "{id:order_}", want: Template{{Source: SourceID, IDPrefix: "order_"}}},
		{in: "{id}", want: Template{{Source: SourceID}}},
		{in: "r:{query.userId=any}:{query.productId=any}", want: Template{
			{Literal: "r:"},
			{Source: SourceQuery, Name: "userId", Default: "any", HasDefault: true},
			{Literal: ":"},
			{Source: SourceQuery, Name: "productId", Default: "any", HasDefault: true},
		}},
		{in: "{{literal}} {body.a}", want: Template{{Literal: "{literal} "}, {Source: SourceBody, Name: "a"}}},
		{in: "{body.url=http://x/?a=b}", want: Template{{Source: SourceBody, Name: "url", Default: "http://x/?a=b", HasDefault: true}}},
		{in: "{cookie.sid}", err: `unknown source "cookie"`},
		{in: "{userId}", err: "want {path.X}, {query.X}, {header.X}, {body.X}, {body} or {id:PREFIX}"},
		{in: "{}", err: "want {path.X}"},
		{in: "{path.}", err: "a path name is required"},
		{in: "{path.user-id}", err: `bad path parameter name "user-id"`},
		{in: "{header.a b}", err: `bad header name "a b"`},
		{in: "{body.a..b}", err: `bad JSON path "a..b"`},
		{in: "{body..a}", err: `bad JSON path ".a"`},
		{in: "{query.a b}", err: `bad query name "a b"`},
		{in: "{id:a b}", err: "an id prefix has no spaces and no default"},
		{in: "x{body.a", err: "unclosed {"},
		{in: "{body.{a}}", err: "unclosed {"},
		{in: "a}b", err: "unmatched }"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTemplate(tt.in)
			if wantErr(t, err, tt.err) {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseTemplate(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in && !strings.Contains(tt.in, "{id}") {
				t.Errorf("String() = %q, want the input back", s)
			}
		})
	}
}

func TestPartJSONPath(t *testing.T) {
	p := Part{Source: SourceBody, Name: "items.0.id"}
	if got := p.JSONPath(); !reflect.DeepEqual(got, []string{"items", "0", "id"}) {
		t.Fatalf("JSONPath() = %q", got)
	}
}

func TestParseKeyField(t *testing.T) {
	tests := []struct {
		in   string
		want KeyField
		err  string
	}{
		{in: "category", want: KeyField{Name: "category"}},
		{in: "q=", want: KeyField{Name: "q", HasDefault: true}},
		{in: "topK=20", want: KeyField{Name: "topK", Default: "20", HasDefault: true}},
		{in: "userId=demo_user", want: KeyField{Name: "userId", Default: "demo_user", HasDefault: true}},
		{in: "a=b=c", want: KeyField{Name: "a", Default: "b=c", HasDefault: true}},
		{in: "", err: "needs a name"},
		{in: "=20", err: "needs a name"},
		{in: "top k", err: `bad key field name "top k"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseKeyField(tt.in)
			if wantErr(t, err, tt.err) {
				return
			}
			if got != tt.want {
				t.Fatalf("ParseKeyField(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}
