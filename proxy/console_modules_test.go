package proxy

import (
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The console's front end is a set of small ES modules, one concern each
// (render, api, confirm, actions, one per page, markdown), loaded from
// index.html's one entry module under the CSP's script-src 'self'. This
// walks the import graph over the real admin listener from the page
// itself, so a split that loses or misnames a file fails here, not in a
// user's browser.

var (
	scriptTag   = regexp.MustCompile(`<script\b([^>]*)>`)
	srcAttr     = regexp.MustCompile(`\bsrc="([^"]+)"`)
	preloadTag  = regexp.MustCompile(`<link rel="modulepreload" href="([^"]+)">`)
	importsFrom = regexp.MustCompile(`(?m)^\s*import\s+(?:[^"';]*?\s+from\s+)?"([^"]+)";`)
)

// consoleMaxLines is the size past which a console file usually holds two
// concerns (STYLE.md: split it).
const consoleMaxLines = 600

func TestConsoleModuleGraph(t *testing.T) {
	tg := consoleGateway(t)
	page := do(t, "GET", tg.admin+"/ui/", "", "")
	if page.status != 200 {
		t.Fatalf("GET /ui/ = %d", page.status)
	}
	html := string(page.body)

	// One entry script, a module with a src: the CSP runs no inline script.
	var entries []string
	for _, m := range scriptTag.FindAllStringSubmatch(html, -1) {
		src := srcAttr.FindStringSubmatch(m[1])
		if src == nil {
			t.Errorf("inline <script%s>: the CSP refuses it", m[1])
			continue
		}
		if !strings.Contains(m[1], `type="module"`) {
			t.Errorf("<script%s> is not a module", m[1])
		}
		entries = append(entries, src[1])
	}
	if len(entries) != 1 {
		t.Fatalf("entry scripts %v; want one", entries)
	}

	// Walk the imports from the entry; every module is served as JavaScript
	// with the CSP.
	seen := map[string]bool{}
	queue := slices.Clone(entries)
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		r := do(t, "GET", tg.admin+"/ui/"+name, "", "")
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") {
			t.Errorf("module %s: %d %q; want 200 text/javascript", name, r.status, r.header.Get("Content-Type"))
			continue
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("module %s: CSP %q", name, csp)
		}
		for _, m := range importsFrom.FindAllStringSubmatch(string(r.body), -1) {
			if !strings.HasPrefix(m[1], "./") {
				t.Errorf("%s imports %q: only this origin's ./ files", name, m[1])
				continue
			}
			queue = append(queue, path.Clean(m[1]))
		}
	}

	// Every .js file shipped is in the graph (no dead file), and every
	// module but the entry is preloaded, so the page fetches them at once
	// rather than one import level at a time.
	files, err := os.ReadDir("console/assets")
	if err != nil {
		t.Fatal(err)
	}
	var shipped []string
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".js") {
			shipped = append(shipped, f.Name())
		}
	}
	var graph []string
	for name := range seen {
		graph = append(graph, name)
	}
	slices.Sort(graph)
	if !slices.Equal(shipped, graph) {
		t.Errorf("shipped modules %v; reachable from index.html %v", shipped, graph)
	}
	var preloaded []string
	for _, m := range preloadTag.FindAllStringSubmatch(html, -1) {
		preloaded = append(preloaded, m[1])
	}
	slices.Sort(preloaded)
	want := slices.DeleteFunc(slices.Clone(graph), func(s string) bool { return s == entries[0] })
	if !slices.Equal(preloaded, want) {
		t.Errorf("modulepreload %v; want every imported module %v", preloaded, want)
	}

	// One concern per file: none grows past the size that means two.
	for _, name := range shipped {
		b, err := os.ReadFile("console/assets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > consoleMaxLines {
			t.Errorf("%s has %d lines; past %d it holds two concerns: split it", name, n, consoleMaxLines)
		}
	}
}
