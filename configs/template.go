package configs

import (
	"errors"
	"fmt"
	"strings"
)

// Source says where a placeholder takes its value from.
type Source string

// The placeholder sources. SourceID generates a value instead of reading
// one from the request.
const (
	SourcePath   Source = "path"
	SourceQuery  Source = "query"
	SourceHeader Source = "header"
	SourceBody   Source = "body"
	SourceID     Source = "id"
)

// Part is one piece of a Template: a literal when Source is empty, else a
// placeholder the proxy fills from the request when it evaluates the
// template.
type Part struct {
	// Literal is the text of a literal part, braces already unescaped.
	Literal string
	// Source is where a placeholder's value comes from; empty for a literal.
	Source Source
	// Name is a path parameter, query parameter or header name, or for
	// SourceBody a JSON path such as "user.id" or "items.0".
	Name string
	// Default stands in when the request lacks the value; it applies only
	// when HasDefault, so "{query.q=}" has an empty default while
	// "{query.q}" has none (a request without q is refused).
	Default    string
	HasDefault bool
	// OrDefault, written "{body.status||pending}", makes the default stand
	// in for a falsy value too, as JavaScript's || does: a missing one,
	// null, false, 0 or an empty string.
	OrDefault bool
	// IDPrefix starts each generated id of a SourceID part, as in
	// "{id:order_}".
	IDPrefix string
}

// IsLiteral reports whether p is literal text rather than a placeholder.
func (p Part) IsLiteral() bool { return p.Source == "" }

// JSONPath splits a SourceBody name into its steps: "items.0.id" gives
// ["items", "0", "id"].
func (p Part) JSONPath() []string {
	if p.Name == "" {
		return nil // {body}: the whole body
	}
	return strings.Split(p.Name, ".")
}

// Template is a value with placeholders, such as "user:{path.userId}",
// parsed once at load time so evaluating it per request only reads parts.
type Template []Part

// ParseTemplate reads a value template. Placeholders are {path.X},
// {query.X}, {header.X} and {body.X} with an optional default after "="
// ({body.ttl=0}), and {id:PREFIX}. "{{" and "}}" stand for literal braces.
func ParseTemplate(s string) (Template, error) {
	var t Template
	var lit strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "{{"), strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte(s[i])
			i += 2
		case s[i] == '}':
			return nil, fmt.Errorf("template %q: unmatched } (write }} for a literal brace)", s)
		case s[i] == '{':
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] == '{' {
				return nil, fmt.Errorf("template %q: unclosed { (write {{ for a literal brace)", s)
			}
			p, err := parsePlaceholder(s[i+1 : i+1+end])
			if err != nil {
				return nil, fmt.Errorf("template %q: %w", s, err)
			}
			if lit.Len() > 0 {
				t = append(t, Part{Literal: lit.String()})
				lit.Reset()
			}
			t = append(t, p)
			i += end + 2
		default:
			lit.WriteByte(s[i])
			i++
		}
	}
	if lit.Len() > 0 {
		t = append(t, Part{Literal: lit.String()})
	}
	return t, nil
}

func parsePlaceholder(in string) (Part, error) {
	if in == "id" {
		return Part{Source: SourceID}, nil
	}
	if prefix, ok := strings.CutPrefix(in, "id:"); ok {
		if strings.ContainsAny(prefix, "= \t") {
			return Part{}, fmt.Errorf("{%s}: an id prefix has no spaces and no default", in)
		}
		return Part{Source: SourceID, IDPrefix: prefix}, nil
	}
	if in == string(SourceBody) {
		return Part{Source: SourceBody}, nil // the whole body
	}
	src, ref, ok := strings.Cut(in, ".")
	if !ok {
		return Part{}, fmt.Errorf("{%s}: want {path.X}, {query.X}, {header.X}, {body.X}, {body} or {id:PREFIX}", in)
	}
	// Whichever comes first, = or ||, starts the default: the rest is
	// its text, bars or equals signs included.
	name, def, hasDef := strings.Cut(ref, "=")
	or := false
	if i := strings.Index(ref, "||"); i >= 0 && (!hasDef || i < len(name)) {
		name, def, hasDef, or = ref[:i], ref[i+2:], true, true
	}
	if err := checkName(Source(src), name); err != nil {
		return Part{}, fmt.Errorf("{%s}: %w", in, err)
	}
	return Part{Source: Source(src), Name: name, Default: def, HasDefault: hasDef, OrDefault: or}, nil
}

// checkName reports whether name can be read from src: a path parameter is
// an identifier, a header name an HTTP token, a body name a dotted JSON path.
func checkName(src Source, name string) error {
	switch src {
	case SourcePath, SourceQuery, SourceHeader, SourceBody:
	default:
		return fmt.Errorf("unknown source %q (want path, query, header, body or id)", src)
	}
	switch {
	case name == "":
		return fmt.Errorf("a %s name is required", src)
	case src == SourcePath && !isIdent(name):
		return fmt.Errorf("bad path parameter name %q", name)
	case src == SourceHeader && !isToken(name):
		return fmt.Errorf("bad header name %q", name)
	case src == SourceBody && (strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..")):
		return fmt.Errorf("bad JSON path %q (want steps joined by dots, like user.id or items.0)", name)
	case strings.ContainsAny(name, " \t\r\n{}"):
		return fmt.Errorf("bad %s name %q", src, name)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of methods and
// header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// String writes the template back in its canonical form, braces escaped.
func (t Template) String() string {
	var b strings.Builder
	for _, p := range t {
		switch {
		case p.IsLiteral():
			b.WriteString(strings.NewReplacer("{", "{{", "}", "}}").Replace(p.Literal))
		case p.Source == SourceID:
			b.WriteString("{id:" + p.IDPrefix + "}")
		case p.Source == SourceBody && p.Name == "":
			b.WriteString("{body}")
		default:
			b.WriteString("{" + string(p.Source) + "." + p.Name)
			switch {
			case p.OrDefault:
				b.WriteString("||" + p.Default)
			case p.HasDefault:
				b.WriteString("=" + p.Default)
			}
			b.WriteString("}")
		}
	}
	return b.String()
}

// KeyField is one entry of a cache key allowlist: a name and, after "=",
// the default used when the request lacks it, so "topK=20" and an absent
// topK share one cache entry.
type KeyField struct {
	Name       string
	Default    string
	HasDefault bool
}

// ParseKeyField reads an allowlist entry such as "category", "q=" (empty
// default) or "topK=20".
func ParseKeyField(s string) (KeyField, error) {
	name, def, hasDef := strings.Cut(s, "=")
	if name == "" {
		return KeyField{}, errors.New("key field needs a name before =")
	}
	if strings.ContainsAny(name, " \t\r\n{}") {
		return KeyField{}, fmt.Errorf("bad key field name %q", name)
	}
	return KeyField{Name: name, Default: def, HasDefault: hasDef}, nil
}
