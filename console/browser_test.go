package console_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// chromium finds a Chromium to drive: $SWITCHBACK_CHROMIUM, or one on PATH
// (.ci/run installs Debian's chromium).
func chromium() string {
	if p := os.Getenv("SWITCHBACK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// repoRoot is the module root, where .cache/ and docs/ live.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startBrowser starts one headless Chromium for the test; each tab opened
// on it with newTab has its own cookies.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("no Chromium found (install Debian's chromium, as .ci/run does, or set SWITCHBACK_CHROMIUM): skipping the console's browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// The first Run starts the browser, under a context without deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// tab is one browser context (its own cookie jar) with one page.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return &tab{t: t, ctx: ctx}
}

// with is the tab for a subtest, which must fail the subtest, not its
// parent.
func (b *tab) with(t *testing.T) *tab { return &tab{t: t, ctx: b.ctx} }

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func run[T any](b *tab, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(ctx, a)
}

func (b *tab) open(url string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url))
}

// eval runs JavaScript in the page and decodes its value.
func eval[T any](b *tab, js string) T {
	b.t.Helper()
	v, err := run(b, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitJS polls a JavaScript predicate until it is true; navigation in
// between is not an error.
func (b *tab) waitJS(what, js string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := run(b, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s (%s): last error %v", what, js, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// byName finds elements the way a screen reader or a script does: by the
// role and accessible name Chromium computes, under the first element
// matching within (the whole page when empty).
func (b *tab) byName(role, name, within string) []cdp.BackendNodeID {
	b.t.Helper()
	ids, err := b.query(role, name, within)
	if err != nil {
		b.t.Fatalf("find %s %q: %v", role, name, err)
	}
	return ids
}

func (b *tab) query(role, name, within string) ([]cdp.BackendNodeID, error) {
	return run(b, func(ctx context.Context, t *chromedp.Target) ([]cdp.BackendNodeID, error) {
		doc, err := cdp.Call(ctx, t, dom.GetDocument, dom.GetDocumentParams{})
		if err != nil {
			return nil, err
		}
		root := doc.Root.NodeID
		if within != "" {
			r, err := cdp.Call(ctx, t, dom.QuerySelector, dom.QuerySelectorParams{NodeID: root, Selector: within})
			if err != nil || r.NodeID == 0 {
				return nil, err
			}
			root = r.NodeID
		}
		res, err := cdp.Call(ctx, t, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{NodeID: root, AccessibleName: name, Role: role})
		if err != nil {
			return nil, err
		}
		var out []cdp.BackendNodeID
		for _, n := range res.Nodes {
			if !n.Ignored && n.BackendDOMNodeID != 0 {
				out = append(out, n.BackendDOMNodeID)
			}
		}
		return out, nil
	})
}

// find waits for an element by role and name.
func (b *tab) find(role, name, within string) cdp.BackendNodeID {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// A navigation in between invalidates node ids: ask again.
		ids, err := b.query(role, name, within)
		if err == nil && len(ids) > 0 {
			return ids[0]
		}
		if time.Now().After(deadline) {
			body, _ := run(b, chromedp.Evaluate[string](`document.body.innerText.slice(0, 800)`))
			b.t.Fatalf("no %s named %q on %s (last error: %v); the page says:\n%s", role, name, b.location(), err, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *tab) location() string {
	loc, _ := run(b, chromedp.Location())
	return loc
}

// click clicks the middle of an element with the mouse, as a user would.
func (b *tab) click(role, name, within string) {
	b.t.Helper()
	id := b.find(role, name, within)
	b.do(func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, t, dom.ScrollIntoViewIfNeeded, dom.ScrollIntoViewIfNeededParams{BackendNodeID: id}); err != nil {
			return chromedp.Void{}, err
		}
		box, err := cdp.Call(ctx, t, dom.GetBoxModel, dom.GetBoxModelParams{BackendNodeID: id})
		if err != nil {
			return chromedp.Void{}, err
		}
		q := box.Model.Border
		x, y := (q[0]+q[2]+q[4]+q[6])/4, (q[1]+q[3]+q[5]+q[7])/4
		return chromedp.MouseClickXY(x, y)(ctx, t)
	})
}

// fill focuses a field by role and name, clears it and types text.
func (b *tab) fill(role, name, within, text string) {
	b.t.Helper()
	id := b.find(role, name, within)
	b.do(func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, dom.Focus, dom.FocusParams{BackendNodeID: id})
		return chromedp.Void{}, err
	})
	eval[bool](b, `(document.activeElement.select && document.activeElement.select(), true)`)
	b.do(chromedp.KeyEvent(kb.Delete), chromedp.KeyEvent(text))
}

// screenshot keeps a PNG of the page in $SWITCHBACK_SCREENSHOTS (relative
// to the repository), when set.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("SWITCHBACK_SCREENSHOTS")
	if dir == "" {
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repoRoot(b.t), dir)
	}
	png, err := run(b, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// dialogScreenshot keeps a PNG of the viewport, where the modal dialog is.
func (b *tab) dialogScreenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("SWITCHBACK_SCREENSHOTS")
	if dir == "" {
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repoRoot(b.t), dir)
	}
	png, err := run(b, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn uses the sign-in form with a token.
func (b *tab) signIn(base, token string) {
	b.t.Helper()
	b.open(base + "/ui/")
	b.fill("textbox", "Token", "", token)
	b.click("button", "Sign in", "")
	b.find("heading", "Deployments", "")
}

// cookies are the browser context's cookies.
func (b *tab) cookies() []*network.Cookie {
	b.t.Helper()
	res, err := run(b, func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{})
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return res.Cookies
}

// axe runs axe-core in the page and fails on serious or critical
// violations. axe.min.js comes from npm (.ci/run installs it under
// .cache/node); without it the check is skipped with a message.
func (b *tab) axe(page string) {
	b.t.Helper()
	path := os.Getenv("SWITCHBACK_AXE")
	if path == "" {
		path = filepath.Join(repoRoot(b.t), ".cache", "node", "node_modules", "axe-core", "axe.min.js")
	}
	src, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b.t.Logf("axe-core not found at %s (npm install --prefix .cache/node axe-core, as .ci/run does): skipping the accessibility check of %s", path, page)
		return
	}
	if err != nil {
		b.t.Fatal(err)
	}
	eval[bool](b, string(src)+";true")
	type violation struct {
		ID     string   `json:"id"`
		Impact string   `json:"impact"`
		Help   string   `json:"help"`
		Nodes  []string `json:"nodes"`
	}
	type report struct {
		Passes     int         `json:"passes"`
		Violations []violation `json:"violations"`
	}
	r := eval[report](b, `axe.run(document).then(r => ({passes: r.passes.length, violations: r.violations
		.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))}))`)
	if r.Passes == 0 {
		b.t.Errorf("axe on %s checked nothing", page)
	}
	b.t.Logf("axe on %s: %d rules pass, %d violations", page, r.Passes, len(r.Violations))
	for _, v := range r.Violations {
		msg := fmt.Sprintf("axe on %s: %s (%s): %s\n\t%s", page, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Error(msg)
		} else {
			b.t.Log(msg)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
