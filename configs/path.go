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
