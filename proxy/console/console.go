// Package console serves the investigator console (issue 18): static
// HTML, CSS and JavaScript embedded in the binary, served by the admin
// listener under /ui/. The page reads only the admin JSON API (with the
// admin token the user types, kept in sessionStorage and sent as a bearer
// header) and the incident charts the server draws; nothing it loads
// comes from anywhere else, and the Content-Security-Policy sent with
// every file says so to the browser.
package console

import (
	"embed"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

//go:embed assets
var assets embed.FS

// CSP is the Content-Security-Policy of every console response: the page
// may load and call only its own origin, runs no inline script or style,
// and cannot be framed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Serve answers a request for path (/ui or under /ui/) with an embedded
// file: /ui/ is the page, /ui/NAME a file of assets/. Unknown names get
// 404; only GET and HEAD are answered.
func Serve(ctx *fasthttp.RequestCtx, p string) {
	serve(ctx, p)
	// After serve: ctx.Error resets the headers.
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

func serve(ctx *fasthttp.RequestCtx, p string) {
	h := &ctx.Response.Header
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
		h.Set("Allow", "GET, HEAD")
		return
	}
	if p == "/ui" {
		ctx.Redirect("/ui/", fasthttp.StatusMovedPermanently)
		return
	}
	name := strings.TrimPrefix(p, "/ui/")
	if name == "" {
		name = "index.html"
	}
	if strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return
	}
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	ctx.SetContentType(ct)
	// The files change only with the binary; a reload picks up a new one.
	h.Set("Cache-Control", "no-cache")
	ctx.SetBody(b)
}
