package proxy

import (
	"bytes"
	"fmt"
	"sync/atomic"

	"github.com/style-shepherd/sheepdog/configs"
)

// maxParams bounds the path parameters of one template; Params lives on the
// stack, so a match never allocates. configs.ParsePath enforces it, so a
// config that validates never exceeds it.
const maxParams = configs.MaxPathParams

// route is one compiled entry of the route table.
type route struct {
	cfg    *configs.Route
	name   string
	method []byte // empty: any method
	prefix []byte // set for path_prefix routes
	segs   []segment
	stats  *routeStats // shared with the route of the same name across reloads

	cache       *cacheRule         // set on cache routes
	invalidates []configs.Template // tags dropped after a successful write
	invBody     bool               // an invalidation reads the JSON body
	fetchTime   atomic.Int64       // the last upstream fetch's duration, ns: XFetch's scale
}

// segment is one '/'-separated piece of a path template: a literal, or a
// parameter that takes any non-empty segment.
type segment struct {
	literal []byte
	param   string
}

// Params holds the path parameters of a match as offsets into the path, so
// matching copies nothing.
type Params struct {
	n     int
	names [maxParams]string
	spans [maxParams][2]int
	path  []byte
}

// Get returns the value of the named parameter, or nil. The bytes belong to
// the request and must not be kept past the handler.
func (p *Params) Get(name string) []byte {
	for i := 0; i < p.n; i++ {
		if p.names[i] == name {
			return p.path[p.spans[i][0]:p.spans[i][1]]
		}
	}
	return nil
}

// router is the route table, compiled once; first match wins.
type router struct {
	routes []*route
}

func newRouter(cfgs []configs.Route) (*router, error) {
	r := &router{routes: make([]*route, 0, len(cfgs))}
	for i := range cfgs {
		c := &cfgs[i]
		rt := &route{cfg: c, name: c.Name, method: []byte(c.Match.Method), stats: new(routeStats)}
		if c.Match.PathPrefix != "" {
			rt.prefix = []byte(c.Match.PathPrefix)
		} else {
			segs, err := configs.ParsePath(c.Match.Path)
			if err != nil {
				return nil, fmt.Errorf("route %s: %w", c.Name, err)
			}
			params := 0
			for _, s := range segs {
				if s.Param != "" {
					params++
					rt.segs = append(rt.segs, segment{param: s.Param})
				} else {
					rt.segs = append(rt.segs, segment{literal: []byte(s.Literal)})
				}
			}
			if params > maxParams { // unreachable past ParsePath; Params would overflow
				return nil, fmt.Errorf("route %s: more than %d path parameters", c.Name, maxParams)
			}
		}
		if c.Cache != nil {
			cr, err := compileCache(c.Cache)
			if err != nil {
				return nil, fmt.Errorf("route %s: %w", c.Name, err)
			}
			rt.cache = cr
		}
		for _, raw := range c.Invalidates {
			t, err := configs.ParseTemplate(raw)
			if err != nil {
				return nil, fmt.Errorf("route %s: invalidates %q: %w", c.Name, raw, err)
			}
			for _, part := range t {
				rt.invBody = rt.invBody || part.Source == configs.SourceBody
			}
			rt.invalidates = append(rt.invalidates, t)
		}
		r.routes = append(r.routes, rt)
	}
	return r, nil
}

var methodGet, methodHead = []byte("GET"), []byte("HEAD")

// match returns the first route that takes method and path, filling p with
// the path parameters, or nil.
func (r *router) match(method, path []byte, p *Params) *route {
	for _, rt := range r.routes {
		if len(rt.method) > 0 && !bytes.Equal(rt.method, method) &&
			!(bytes.Equal(method, methodHead) && bytes.Equal(rt.method, methodGet)) {
			continue
		}
		if rt.prefix != nil {
			if len(path) >= len(rt.prefix) && bytes.EqualFold(path[:len(rt.prefix)], rt.prefix) {
				p.n, p.path = 0, path
				return rt
			}
			continue
		}
		if rt.matchPath(path, p) {
			return rt
		}
	}
	return nil
}

// matchPath matches path against the template segment by segment. Like
// Express (the app's router), one trailing slash is allowed, and literal
// segments match whatever their case (Express's caseSensitive is false).
func (rt *route) matchPath(path []byte, p *Params) bool {
	p.n, p.path = 0, path
	pos := 0
	for _, s := range rt.segs {
		if pos >= len(path) || path[pos] != '/' {
			return false
		}
		pos++
		end := bytes.IndexByte(path[pos:], '/')
		if end < 0 {
			end = len(path)
		} else {
			end += pos
		}
		seg := path[pos:end]
		if s.param != "" {
			if len(seg) == 0 {
				return false
			}
			p.names[p.n] = s.param
			p.spans[p.n] = [2]int{pos, end}
			p.n++
		} else if !bytes.EqualFold(seg, s.literal) {
			return false
		}
		pos = end
	}
	rest := path[pos:]
	return len(rest) == 0 || (len(rest) == 1 && rest[0] == '/')
}
