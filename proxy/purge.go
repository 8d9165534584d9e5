package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/cachelayer"
)

// PurgeRequest is the body of POST /purge: exactly one of URL, Tag or
// Prefix. URL names a cached answer as a client would ask for it (Method
// defaults to GET; Body is the JSON body of a read sent as POST; Headers
// the request headers, cookies as a Cookie header, on a route whose key
// reads them); every variant of it goes. Tag drops every entry tagged so;
// Prefix every entry whose path starts with it. All three reach every
// replica.
type PurgeRequest struct {
	URL     string            `json:"url,omitempty"`
	Method  string            `json:"method,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Tag     string            `json:"tag,omitempty"`
	Prefix  string            `json:"prefix,omitempty"`
}

// authorised checks the admin token, sent as "Authorization: Bearer T".
// Without a configured token, state-changing endpoints are refused.
func (p *Proxy) authorised(ctx *fasthttp.RequestCtx) bool {
	token := p.cfg.Admin.Token
	got, ok := strings.CutPrefix(string(ctx.Request.Header.Peek("Authorization")), "Bearer ")
	return token != "" && ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func (p *Proxy) servePurge(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		notAllowed(ctx, "POST", "purge takes POST")
		return
	}
	if !p.authorised(ctx) {
		writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "purge needs the admin token (Authorization: Bearer …)")
		return
	}
	var req PurgeRequest
	if err := json.Unmarshal(ctx.PostBody(), &req); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "body must be JSON: {\"url\"|\"tag\"|\"prefix\": …}")
		return
	}
	n := 0
	for _, set := range []bool{req.URL != "", req.Tag != "", req.Prefix != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "name exactly one of url, tag or prefix")
		return
	}
	var err error
	switch {
	case req.Tag != "":
		err = p.cache.Invalidate(ctx, req.Tag)
	case req.Prefix != "":
		if !strings.HasPrefix(req.Prefix, "/") {
			writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "prefix must start with /")
			return
		}
		err = p.cache.Ban(ctx, req.Prefix)
	default:
		var tag string
		if tag, err = p.keyTag(req); err == nil {
			err = p.cache.Invalidate(ctx, tag)
		}
	}
	if err != nil {
		var bad *badPurge
		if errors.As(err, &bad) {
			writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, bad.msg)
			return
		}
		writeError(ctx, fasthttp.StatusServiceUnavailable, "purge_incomplete", "dropped here, but not everywhere: "+err.Error())
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"purged": true})
}

type badPurge struct{ msg string }

func (b *badPurge) Error() string { return b.msg }

// keyTag finds the route a purge URL would take and the tag of the key it
// would be cached under, computed exactly as for a client's request.
func (p *Proxy) keyTag(pr PurgeRequest) (string, error) {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(pr.URL)
	method := pr.Method
	if method == "" {
		method = fasthttp.MethodGet
	}
	ctx.Request.Header.SetMethod(strings.ToUpper(method))
	if len(pr.Body) > 0 {
		ctx.Request.SetBody(pr.Body)
	}
	for name, v := range pr.Headers {
		ctx.Request.Header.Set(name, v)
	}
	rv := requestValues{ctx: &ctx}
	rt := p.router.match(ctx.Method(), ctx.Path(), &rv.params)
	if rt == nil || rt.cache == nil || !cacheableMethod(rt, ctx.Method()) {
		// A route read from the cache only by GET and HEAD has no entry
		// for another method, which it passes to the app.
		return "", &badPurge{msg: "no cache route takes " + method + " " + pr.URL}
	}
	if pr.Headers == nil && (rt.cache.keyedHeader || rt.cache.cookies) {
		// Without them the key is the one of a request that sent none,
		// most likely not the entry meant: say so rather than purge it.
		return "", &badPurge{msg: "route " + rt.name + " keys on request headers or cookies: name them in \"headers\" (an empty object for none), or purge by tag or prefix"}
	}
	kb := cachelayer.AcquireKeyBuilder()
	defer cachelayer.ReleaseKeyBuilder(kb)
	key := rt.cache.buildKey(kb, rt.name, ctx.Method(), &rv)
	return keyTagPrefix + key.String(), nil
}
