package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/internal/testharness"
)

// TestConsole drives the console in a real headless Chromium against a real
// gateway and etcd: every control is found by its role and accessible name,
// and every change is checked where it matters, through the proxy or the
// API. The subtests share the gateway and run in order.
func TestConsole(t *testing.T) {
	browser := startBrowser(t)
	env := startGateway(t)
	ctx := t.Context()
	dep := env.admin + "/ui/deployments/checkout"

	version := func() uint64 {
		d, err := env.operator.Status(ctx, "checkout")
		must(t, err)
		return d.Version
	}

	t.Run("sign-in", func(t *testing.T) {
		b := newTab(t, browser)
		b.open(env.admin + "/ui/")
		b.find("heading", "Sign in", "")
		b.axe("the sign-in page")
		b.fill("textbox", "Token", "", "not-a-token")
		b.click("button", "Sign in", "")
		b.waitJS("the refusal", `!!document.querySelector('[role=alert]') && document.querySelector('[role=alert]').textContent.includes('not in the tokens file')`)
		b.signIn(env.admin, operatorToken)
		var session bool
		for _, c := range b.cookies() {
			if c.Name == "switchback_console" {
				session = true
				if !c.HTTPOnly || c.SameSite != "Strict" || c.Path != "/ui/" {
					t.Errorf("session cookie HttpOnly=%v SameSite=%q Path=%q, want HttpOnly, Strict, /ui/", c.HTTPOnly, c.SameSite, c.Path)
				}
			}
		}
		if !session {
			t.Fatal("no session cookie after signing in")
		}
		if got := eval[string](b, `document.querySelector('.who').textContent`); !strings.Contains(got, "alice") || !strings.Contains(got, "operator") {
			t.Errorf("signed-in user shown as %q, want alice (operator)", got)
		}
		b.click("button", "Sign out", "")
		b.find("heading", "Sign in", "")
		b.open(env.admin + "/ui/")
		b.find("heading", "Sign in", "")

		// Signing in from a link lands on the page it named.
		b.open(dep + "/history")
		b.fill("textbox", "Token", "", viewerToken)
		b.click("button", "Sign in", "")
		b.find("heading", "History of checkout", "")
	})

	t.Run("a link from another site opens the page signed in", func(t *testing.T) {
		b := newTab(t, browser)
		b.signIn(env.admin, operatorToken)
		// localhost and 127.0.0.1 are different sites: the link's
		// navigation is cross-site and carries no SameSite=Strict cookie.
		alert := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><title>alert</title><a href="%s">checkout is failing</a>`, dep)
		}))
		t.Cleanup(alert.Close)
		b.open(strings.Replace(alert.URL, "127.0.0.1", "localhost", 1))
		b.click("link", "checkout is failing", "")
		b.find("heading", "checkout", "main")
		if n := len(b.byName("button", "Flip", "")); n != 1 {
			t.Errorf("the page opened from the link has %d Flip buttons, want 1 (signed in as the operator)", n)
		}
	})

	t.Run("viewer sees no controls and a forged POST is refused", func(t *testing.T) {
		b := newTab(t, browser)
		b.signIn(env.admin, viewerToken)
		b.open(dep)
		b.find("heading", "checkout", "")
		for _, name := range []string{"Flip", "Roll back", "Save", "Turn off", "Pause", "Abort"} {
			if n := len(b.byName("button", name, "")); n != 0 {
				t.Errorf("viewer sees %d %q buttons, want none", n, name)
			}
		}
		if n := len(b.byName("spinbutton", "new_payment_flow", "")); n != 0 {
			t.Errorf("viewer sees %d percentage fields, want none", n)
		}
		b.open(dep + "/history")
		b.find("heading", "History of checkout", "")
		if n := len(b.byName("button", "Restore version 1", "")); n != 0 {
			t.Errorf("viewer sees %d Restore buttons, want none", n)
		}
		before := version()
		// The viewer's own page holds a valid form token (in its Sign out
		// form): the refusal must come from the API's roles.
		status := eval[int](b, `fetch('/ui/deployments/checkout/apply', {method: 'POST', body: new URLSearchParams({
			csrf: document.querySelector('input[name=csrf]').value, action: 'flip', reason: 'forged'})}).then(r => r.status)`)
		if status != http.StatusForbidden {
			t.Errorf("viewer's forged flip answered %d, want 403", status)
		}
		if after := version(); after != before {
			t.Errorf("version %d after the viewer's forged flip, want %d", after, before)
		}
	})

	op := newTab(t, browser)
	op.signIn(env.admin, operatorToken)

	// submit waits for a control's dialog, checks it shows the diff it
	// will write, gives a reason and confirms; it returns the message the
	// new state is shown with.
	submit := func(t *testing.T, b *tab, wantPaths []string, reason, shot string) string {
		t.Helper()
		b.find("dialog", "", "")
		b.waitJS("the dialog to open", `document.querySelector('dialog').open`)
		text := eval[string](b, `document.querySelector('dialog').textContent`)
		for _, p := range wantPaths {
			if !strings.Contains(text, p) {
				t.Errorf("dialog does not show the change of %s:\n%s", p, text)
			}
		}
		if shot != "" {
			b.dialogScreenshot(shot)
			b.axe("the dialog")
		}
		b.fill("textbox", "Reason", "dialog", reason)
		eval[bool](b, `window.beforeConfirm = true`)
		b.click("button", "Confirm", "dialog")
		b.waitJS("the new state", `!window.beforeConfirm && !!document.querySelector('.flash')`)
		return eval[string](b, `document.querySelector('.flash').textContent`)
	}
	// confirm is submit for a control that writes a version; it returns
	// the version written.
	confirm := func(t *testing.T, b *tab, wantPaths []string, reason, shot string) uint64 {
		t.Helper()
		flash := submit(t, b, wantPaths, reason, shot)
		v, err := strconv.ParseUint(strings.TrimSuffix(strings.Fields(strings.TrimPrefix(flash, "Wrote version "))[0], "."), 10, 64)
		if err != nil {
			t.Fatalf("flash %q: %v", flash, err)
		}
		d, err := env.operator.Version(ctx, "checkout", v)
		must(t, err)
		if d.Meta.Reason != reason || d.Meta.Author != "alice" {
			t.Errorf("version %d by %q for %q, want by alice for %q", v, d.Meta.Author, d.Meta.Reason, reason)
		}
		return v
	}

	var flipped uint64
	t.Run("Flip with a reason moves traffic", func(t *testing.T) {
		op := op.with(t)
		env.waitPool(t, "blue")
		op.open(env.admin + "/ui/")
		op.find("heading", "checkout", "")
		op.screenshot("overview")
		op.axe("the overview")
		op.open(dep)
		op.find("button", "Flip", "")
		op.axe("the deployment page")
		op.click("button", "Flip", "")
		flipped = confirm(t, op, []string{"weights.blue", "weights.green"}, "ship v2", "dialog")
		env.waitPool(t, "green")
		if got := eval[string](op, `document.getElementById('live-version').textContent`); got != strconv.FormatUint(flipped, 10) {
			t.Errorf("page shows live version %s after the flip, want %d", got, flipped)
		}
		// The guard's view, refreshed on the page every few seconds, shows
		// blue as the rollback target until its retention ends.
		op.waitJS("blue retained", `[...document.querySelectorAll('table.pools tbody tr')].some(r =>
			r.cells[0].textContent.trim() === 'blue' && r.cells[5].querySelector('time'))`)
		op.screenshot("deployment")
	})

	t.Run("Roll back restores it", func(t *testing.T) {
		op := op.with(t)
		op.open(dep)
		op.click("button", "Roll back", "")
		v := confirm(t, op, []string{"weights.blue", "weights.green"}, "green misbehaves", "")
		env.waitPool(t, "blue")
		d, err := env.operator.Version(ctx, "checkout", v)
		must(t, err)
		if d.Meta.RestoredFrom != flipped-1 {
			t.Errorf("rollback restored version %d, want %d", d.Meta.RestoredFrom, flipped-1)
		}
	})

	t.Run("Restore version N", func(t *testing.T) {
		op := op.with(t)
		op.open(dep + "/history")
		op.find("heading", "History of checkout", "")
		op.axe("the history page")
		name := "Restore version " + strconv.FormatUint(flipped, 10)
		// Cancel writes nothing.
		before := version()
		op.click("button", name, "")
		op.waitJS("the dialog", `document.querySelector('dialog').open`)
		op.click("button", "Cancel", "dialog")
		op.waitJS("the dialog to close", `!document.querySelector('dialog').open && document.activeElement.textContent === '`+name+`'`)
		if after := version(); after != before {
			t.Fatalf("version %d after Cancel, want %d", after, before)
		}
		op.click("button", name, "")
		v := confirm(t, op, []string{"weights.green"}, "green is fixed", "")
		env.waitPool(t, "green")
		d, err := env.operator.Version(ctx, "checkout", v)
		must(t, err)
		if d.Meta.RestoredFrom != flipped {
			t.Errorf("restored version %d, want %d", d.Meta.RestoredFrom, flipped)
		}
	})

	t.Run("a flag saved and turned off", func(t *testing.T) {
		op := op.with(t)
		op.open(dep)
		flag := `form[data-key="flag-new_payment_flow"]`
		op.fill("spinbutton", "new_payment_flow", "", "25")
		op.click("button", "Save", flag)
		confirm(t, op, []string{"flags.new_payment_flow.percent"}, "widen the flag", "")
		d, err := env.operator.Status(ctx, "checkout")
		must(t, err)
		if got := d.Flags["new_payment_flow"].Percent; got != 25 {
			t.Fatalf("new_payment_flow at %g%% after Save, want 25%%", got)
		}
		op.click("button", "Turn off", flag)
		confirm(t, op, []string{"flags.new_payment_flow.percent"}, "payments fail", "")
		d, err = env.operator.Status(ctx, "checkout")
		must(t, err)
		if got, ok := d.Flags["new_payment_flow"]; !ok || got.Percent != 0 {
			t.Errorf("new_payment_flow %+v (present %v) after Turn off, want 0%%", got, ok)
		}
		if got := eval[string](op, `document.getElementById('flag-1') ? document.querySelector('form[data-key="flag-new_payment_flow"] input[name=percent]').value : ''`); got != "0" {
			t.Errorf("page shows new_payment_flow at %q after Turn off, want 0", got)
		}
	})

	t.Run("the diff view names the changed fields", func(t *testing.T) {
		op := op.with(t)
		op.open(dep + "/diff?from=" + strconv.FormatUint(flipped-1, 10) + "&to=" + strconv.FormatUint(flipped, 10))
		op.find("heading", "Changed fields", "")
		op.screenshot("diff")
		op.axe("the diff page")
		changed := eval[[]string](op, `[...document.querySelectorAll('table.side tr.changed th code')].map(c => c.textContent)`)
		// Retention is state beside the document, so it is no changed field.
		want := "weights.blue,weights.green"
		if strings.Join(changed, ",") != want {
			t.Errorf("side by side marks %v as changed, want %s", changed, want)
		}
		listed := eval[[]string](op, `[...document.querySelectorAll('table.changes th code')].map(c => c.textContent)`)
		if strings.Join(listed, ",") != want {
			t.Errorf("changed fields listed: %v, want %s", listed, want)
		}
		unchanged := eval[bool](op, `[...document.querySelectorAll('table.side tr:not(.changed) th code')].some(c => c.textContent === 'pools.blue.release')`)
		if !unchanged {
			t.Error("pools.blue.release is not shown as an unchanged field")
		}
	})

	t.Run("a change made with the CLI appears on the open page", func(t *testing.T) {
		op := op.with(t)
		op.open(dep)
		op.find("spinbutton", "dark_mode", "")
		eval[bool](op, `window.notReloaded = true`)
		// The keyboard's place survives the update.
		keep := `document.querySelector('form[data-key="flag-new_payment_flow"] button[value=flag-off]')`
		eval[bool](op, keep+`.focus() || true`)
		before := version()
		env.cli(t, "flag", "checkout", "dark_mode", "40", "--reason", "from the cli")
		start := time.Now()
		want := strconv.FormatUint(before+1, 10)
		op.waitJS("the CLI's version on the page", `document.getElementById('live-version').textContent === '`+want+`' &&
			document.querySelector('form[data-key="flag-dark_mode"] input[name=percent]').value === '40'`)
		took := time.Since(start)
		t.Logf("the CLI's change showed on the open page after %v", took)
		if took > time.Second {
			t.Errorf("the CLI's change took %v to show, want within a second", took)
		}
		if !eval[bool](op, `document.activeElement === `+keep) {
			t.Errorf("focus moved to %q with the update, want it kept on Turn off", eval[string](op, `document.activeElement.outerHTML`))
		}
		if !eval[bool](op, `window.notReloaded === true`) {
			t.Error("the page reloaded to show the change")
		}
		if got := eval[string](op, `document.querySelector('#recent').textContent`); !strings.Contains(got, "from the cli") {
			t.Errorf("recent versions do not show the CLI's reason:\n%s", got)
		}
	})

	t.Run("keyboard-only flip", func(t *testing.T) {
		op := op.with(t)
		op.open(dep)
		op.find("button", "Flip", "")
		before := env.pools(t)
		to := "blue"
		if before["blue"] == 8 {
			to = "green"
		}
		// Tab from the top of the page to Flip.
		focusedFlip := `document.activeElement && document.activeElement.textContent.trim() === 'Flip'`
		for i := 0; ; i++ {
			if i == 40 {
				t.Fatal("Flip not reached with Tab")
			}
			op.do(chromedp.KeyEvent(kb.Tab))
			if eval[bool](op, focusedFlip) {
				break
			}
		}
		// Escape closes the dialog and gives focus back to Flip.
		op.do(chromedp.KeyEvent(kb.Enter))
		op.waitJS("the dialog", `document.querySelector('dialog').open && document.activeElement.id === 'reason'`)
		op.do(chromedp.KeyEvent(kb.Escape))
		op.waitJS("focus back on Flip", `!document.querySelector('dialog').open && `+focusedFlip)
		op.do(chromedp.KeyEvent(kb.Enter))
		op.waitJS("the dialog", `document.querySelector('dialog').open && document.activeElement.id === 'reason'`)
		op.do(chromedp.KeyEvent("keyboard only"), chromedp.KeyEvent(kb.Tab))
		if got := eval[string](op, `document.activeElement.textContent.trim()`); got != "Confirm" {
			t.Fatalf("Tab from Reason reaches %q, want Confirm", got)
		}
		op.do(chromedp.KeyEvent(kb.Enter))
		op.waitJS("the new state", `!!document.querySelector('.flash')`)
		env.waitPool(t, to)
		d, err := env.operator.Status(ctx, "checkout")
		must(t, err)
		if d.Meta.Reason != "keyboard only" {
			t.Errorf("reason %q, want %q", d.Meta.Reason, "keyboard only")
		}
	})

	t.Run("a rollout paused and aborted", func(t *testing.T) {
		op := op.with(t)
		d, err := env.operator.Status(ctx, "checkout")
		must(t, err)
		target := "green"
		if d.Weights["green"] > 0 {
			target = "blue"
		}
		env.cli(t, "rollout", "start", "checkout", "--target", "pool:"+target, "--steps", "10,50,100", "--bake", "1h", "--reason", "canary")
		testharness.WaitFor(t, "the rollout's first step", func() bool {
			ro, err := env.operator.Rollout(ctx, "checkout")
			return err == nil && ro.Step == 0
		})
		op.open(dep)
		op.click("button", "Pause", "#rollout")
		if got := submit(t, op, nil, "hold the canary", ""); !strings.Contains(got, "paused") {
			t.Errorf("after Pause the page says %q", got)
		}
		ro, err := env.operator.Rollout(ctx, "checkout")
		must(t, err)
		if ro.State != "paused" {
			t.Fatalf("rollout %s after Pause, want paused", ro.State)
		}
		op.find("button", "Resume", "#rollout")
		op.click("button", "Abort", "#rollout")
		if got := submit(t, op, nil, "canary is bad", ""); !strings.Contains(got, "aborted") {
			t.Errorf("after Abort the page says %q", got)
		}
		ro, err = env.operator.Rollout(ctx, "checkout")
		must(t, err)
		if ro.State != "aborted" {
			t.Errorf("rollout %s after Abort, want aborted", ro.State)
		}
		env.waitPool(t, map[string]string{"green": "blue", "blue": "green"}[target])
		op.waitJS("the rollout's events", `['rollout_started', 'rollout_paused', 'rollout_aborted'].every(k =>
			document.getElementById('dep-events').textContent.includes(k))`)
	})

	t.Run("places for later issues", func(t *testing.T) {
		op := op.with(t)
		for _, p := range []string{"Services", "Change sets", "Releases", "Drills"} {
			op.open(env.admin + "/ui/")
			op.click("link", p, "nav")
			op.find("heading", p, "main")
		}
		op.axe("a page for later")
	})
}

var _ = admin.RoleViewer
