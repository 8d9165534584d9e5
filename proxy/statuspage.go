package proxy

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

// statusPage is the admin listener's GET /: one self-contained page
// (inline CSS and JS, nothing fetched but /health and /stats) that
// redraws itself from those two every two seconds.
//
//go:embed statuspage.html
var statusPage []byte

// statusPageCSP lets the page run its own inline script and style and
// talk to its own origin, and nothing else.
const statusPageCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
	"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func serveStatusPage(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetContentType("text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", statusPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	ctx.SetBody(statusPage)
}
