package proxy

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/cachelayer"
	"github.com/style-shepherd/sheepdog/configs"
)

// cacheRule is a route's cache block compiled once: key fields sorted and
// labelled, tag templates parsed, statuses in a set.
type cacheRule struct {
	ttl, swr, sie time.Duration
	fields        []keyField
	tags          []configs.Template
	statuses      [600]bool
	keyedAuth     bool // Authorization is a key field: such requests may be stored
	cookies       bool // the key names cookies: requests with those may be stored
	cookieNames   []string
	needsBody     bool // a key field or tag reads the JSON body
	keyedBody     bool // a key field reads it: the body goes upstream
	keyedQuery    bool // a key field reads the query
}

// ambiguousQuery reports whether a keyed query parameter comes more than
// once, or in a bracket form (name[]=, name[k]=): Express reads those as an
// array or an object where the key holds one value, so the app's answer
// may not be the key's. Such requests bypass the cache.
func (cr *cacheRule) ambiguousQuery(args *fasthttp.Args) bool {
	if !cr.keyedQuery {
		return false
	}
	for i := range cr.fields {
		f := &cr.fields[i]
		if f.src != configs.SourceQuery {
			continue
		}
		seen := 0
		for k := range args.All() {
			switch {
			case string(k) == f.name:
				seen++
			case len(k) > len(f.name) && k[len(f.name)] == '[' && string(k[:len(f.name)]) == f.name:
				return true
			}
		}
		if seen > 1 {
			return true
		}
	}
	return false
}

// keyField is one allowlisted request value. label and absent are the
// names it is hashed under, precomputed so building a key allocates
// nothing: a missing value without a default is hashed as absent, which
// differs from present-and-empty.
type keyField struct {
	src           configs.Source
	name          string
	def           string
	hasDef        bool
	label, absent string
}

func compileCache(c *configs.CacheRule) (*cacheRule, error) {
	cr := &cacheRule{ttl: c.TTL, swr: c.StaleWhileRevalidate, sie: c.StaleIfError}
	for _, s := range c.Statuses {
		if s > 0 && s < len(cr.statuses) {
			cr.statuses[s] = true
		}
	}
	add := func(src configs.Source, list []string) error {
		for _, raw := range list {
			f, err := configs.ParseKeyField(raw)
			if err != nil {
				return err
			}
			label := string(src) + ":" + f.Name
			cr.fields = append(cr.fields, keyField{src: src, name: f.Name, def: f.Default, hasDef: f.HasDefault,
				label: label, absent: label + "!"})
			switch {
			case src == configs.SourceHeader && bytes.EqualFold([]byte(f.Name), []byte("Authorization")):
				cr.keyedAuth = true
			case src == sourceCookie:
				cr.cookies = true
				cr.cookieNames = append(cr.cookieNames, f.Name)
			case src == configs.SourceBody:
				cr.needsBody, cr.keyedBody = true, true
			case src == configs.SourceQuery:
				cr.keyedQuery = true
			}
		}
		return nil
	}
	for _, group := range []struct {
		src  configs.Source
		list []string
	}{{configs.SourceQuery, c.Key.Query}, {configs.SourceHeader, c.Key.Header}, {configs.SourceBody, c.Key.Body}, {sourceCookie, c.Key.Cookie}} {
		if err := add(group.src, group.list); err != nil {
			return nil, err
		}
	}
	// The key must not depend on the order the file lists fields in.
	slices.SortFunc(cr.fields, func(a, b keyField) int { return cmpString(a.label, b.label) })
	for _, raw := range c.Tags {
		t, err := configs.ParseTemplate(raw)
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", raw, err)
		}
		for _, p := range t {
			if p.Source == configs.SourceBody {
				cr.needsBody = true
			}
		}
		cr.tags = append(cr.tags, t)
	}
	return cr, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// buildKey hashes what tells answers apart: the route, the method (HEAD
// shares GET's entries), the path and the allowlisted values, defaults
// applied. Nothing else of the request can reach the key.
//
// The path is the one the app receives, as the client sent it, not the
// one routing matched (percent-decoded, dot segments removed): otherwise
// /users/mallory/%2E%2E/alice/profile, which the app answers 404, would be
// stored as Alice's profile.
func (cr *cacheRule) buildKey(kb *cachelayer.KeyBuilder, routeName string, method []byte, rv *requestValues) cachelayer.Key {
	kb.Reset()
	kb.Add("route", s2b(routeName))
	if bytes.Equal(method, methodHead) {
		method = methodGet
	}
	kb.Add("method", method)
	kb.Add("path", rv.ctx.URI().PathOriginal())
	for i := range cr.fields {
		f := &cr.fields[i]
		v, ok := rv.value(f.src, f.name)
		switch {
		case ok:
			kb.Add(f.label, v)
		case f.hasDef:
			kb.Add(f.label, s2b(f.def))
		default:
			kb.Add(f.absent, nil)
		}
	}
	return kb.Sum()
}

// variantKey is the key of one variant of a Vary'd answer: the primary key
// and the request's value of each Vary header (Accept-Encoding already
// normalised by the cache handler).
func variantKey(kb *cachelayer.KeyBuilder, primary *cachelayer.Key, vary []string, h *fasthttp.RequestHeader) cachelayer.Key {
	kb.Reset()
	kb.Add("primary", primary[:])
	for _, name := range vary {
		kb.Add(name, h.Peek(name))
	}
	return kb.Sum()
}
