package configs

import (
	"errors"
	"fmt"
	"strings"
)

// Segment is one '/'-separated piece of a path template: a Literal that
// must match exactly, or a Param that takes any non-empty segment.
// Exactly one of the two is set.
type Segment struct {
	Literal string
	Param   string
}

// The bounds of one path template. The router keeps a match's parameters
// in fixed arrays, so that matching never allocates; ParsePath enforces
// both, so a config that validates also compiles.
const (
	MaxPathSegments = 16
	MaxPathParams   = 8
)

// ParsePath reads a path template such as "/users/{userId}/profile".
// Parameters are whole segments named like Go identifiers; a trailing
// slash is allowed and ignored (the router accepts one either way), so
// "/" has no segments at all. A template has at most MaxPathSegments
// segments and MaxPathParams parameters. The error says what to change.
func ParsePath(p string) ([]Segment, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path %q must start with /", p)
	}
	if i := strings.IndexAny(p, "?# \t\r\n*"); i >= 0 {
		return nil, fmt.Errorf("path %q has %q: a template holds only literal segments and {param} segments", p, p[i:i+1])
	}
	if p == "/" {
		return nil, nil
	}
	parts := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	segs := make([]Segment, 0, len(parts))
	params := make(map[string]bool)
	for _, part := range parts {
		seg, err := parseSegment(part)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		if seg.Param != "" {
			if params[seg.Param] {
				return nil, fmt.Errorf("path %q: parameter {%s} appears twice", p, seg.Param)
			}
			params[seg.Param] = true
		}
		segs = append(segs, seg)
	}
	if len(segs) > MaxPathSegments {
		return nil, fmt.Errorf("path %q has %d segments, more than the %d allowed", p, len(segs), MaxPathSegments)
	}
	if len(params) > MaxPathParams {
		return nil, fmt.Errorf("path %q has %d parameters, more than the %d allowed", p, len(params), MaxPathParams)
	}
	return segs, nil
}

func parseSegment(part string) (Segment, error) {
	if part == "" {
		return Segment{}, errors.New("empty segment (//)")
	}
	if !strings.ContainsAny(part, "{}") {
		if err := literalSegment(part); err != nil {
			return Segment{}, err
		}
		return Segment{Literal: part}, nil
	}
	if len(part) < 2 || part[0] != '{' || part[len(part)-1] != '}' {
		return Segment{}, fmt.Errorf("segment %q: a parameter must be a whole segment, like /{id}/", part)
	}
	if name := part[1 : len(part)-1]; !isIdent(name) {
		return Segment{}, fmt.Errorf("segment %q: bad parameter name (want letters, digits and _, not starting with a digit)", part)
	}
	return Segment{Param: part[1 : len(part)-1]}, nil
}

// literalSegment refuses what a request's path never holds once fasthttp
// has decoded it and removed its dot segments: a literal with % or a . or
// .. segment would never match.
func literalSegment(part string) error {
	switch {
	case part == "." || part == "..":
		return fmt.Errorf("segment %q: requests are matched with . and .. segments resolved, so it never matches", part)
	case hasPercentHex(part):
		return fmt.Errorf("segment %q: requests are matched decoded, so %%XX never matches; write the character itself", part)
	}
	return nil
}

// hasPercentHex reports whether s holds a percent-encoding, % and two hex
// digits; a lone % may stand for a decoded %25.
func hasPercentHex(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// prefixProblem is literalSegment for a path_prefix, whose last segment
// may be cut short.
func prefixProblem(prefix string) error {
	parts := strings.Split(prefix, "/")
	for i, part := range parts {
		if i == len(parts)-1 && !hasPercentHex(part) {
			continue // a name's start: /. takes /.env
		}
		if err := literalSegment(part); err != nil {
			return err
		}
	}
	return nil
}

// pathParams lists the parameter names of a parsed path template.
func pathParams(segs []Segment) map[string]bool {
	params := make(map[string]bool)
	for _, s := range segs {
		if s.Param != "" {
			params[s.Param] = true
		}
	}
	return params
}

// shadows reports whether route a, earlier in the table, takes every
// request route b would: b then never matches.
func shadows(a, b *Route) bool {
	am, bm := a.Match, b.Match
	if am.Method != "" && am.Method != bm.Method && (am.Method != "GET" || bm.Method != "HEAD") {
		return false
	}
	if am.PathPrefix != "" {
		// Every path b takes starts with its literal head.
		head := bm.PathPrefix
		if bm.Path != "" {
			head = bm.Path
			if i := strings.IndexByte(head, '{'); i >= 0 {
				head = head[:i]
			} else if len(head) > 1 {
				// The router takes a literal path without its trailing
				// slash too: /api/x/ takes /api/x.
				head = strings.TrimSuffix(head, "/")
			}
		}
		return strings.HasPrefix(head, am.PathPrefix)
	}
	if am.Path == "" || bm.Path == "" {
		return false
	}
	as, errA := ParsePath(am.Path)
	bs, errB := ParsePath(bm.Path)
	if errA != nil || errB != nil || len(as) != len(bs) {
		return false
	}
	for i := range as {
		if as[i].Param == "" && (bs[i].Param != "" || as[i].Literal != bs[i].Literal) {
			return false
		}
	}
	return true
}
