package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/a8e2c47e/switchback/drill/result"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/release"
)

// TestConsoleReleases drives the release pages in a real headless Chromium
// against a real gateway and etcd: a release made with the CLI (green
// takes all traffic, a flag goes up) is listed, shown with what it
// changed, and rolled back from the console with the keyboard alone,
// through the plan dialog, until the page shows it rolled back and the
// proxy sends everyone to blue again.
func TestConsoleReleases(t *testing.T) {
	browser := startBrowser(t)
	env := startGateway(t)
	ctx := t.Context()
	env.waitPool(t, "blue")

	env.cli(t, "release", "start", "checkout", "v2.0.0", "--pool", "green", "--label", "v2", "--reason", "ship v2")
	env.cli(t, "flip", "checkout", "--reason", "v2 takes traffic")
	env.cli(t, "flag", "checkout", "new_payment_flow", "50", "--reason", "widen payments")
	env.cli(t, "release", "finish", "v2.0.0", "--reason", "v2 is out")
	env.waitPool(t, "green")
	rels, err := env.operator.Releases(ctx, "checkout")
	must(t, err)
	if len(rels) != 1 || rels[0].Status != release.Finished {
		t.Fatalf("releases %+v, want v2.0.0 finished", rels)
	}
	id := rels[0].ID
	page := env.admin + "/ui/releases/" + id

	t.Run("a viewer sees the release but no rollback control", func(t *testing.T) {
		b := newTab(t, browser)
		b.signIn(env.admin, viewerToken)
		b.open(env.admin + "/ui/releases")
		b.click("link", "v2.0.0", "main")
		b.find("heading", "Release v2.0.0", "main")
		if n := len(b.byName("button", "Roll back this release", "")); n != 0 {
			t.Errorf("viewer sees %d rollback buttons, want none", n)
		}
		b.open(page + "/rollback")
		b.find("heading", "Forbidden", "main")
		b.axe("the release page, read only")
	})

	op := newTab(t, browser)
	op.signIn(env.admin, operatorToken)

	t.Run("drill results", func(t *testing.T) {
		op := op.with(t)
		recovered := int64(1200)
		_, err := env.operator.RecordDrill(ctx, result.Result{Pattern: "flip", Trigger: result.Manual, Target: "sandbox", Passed: true,
			FlagAfterMS: 90000, Started: time.Now().UTC(), Durations: result.Durations{Recovered: &recovered}, StateEqual: true, Requests: 200})
		must(t, err)
		op.open(env.admin + "/ui/")
		op.click("link", "Drills", "nav")
		op.find("heading", "Drill results", "main")
		if got := eval[string](op, `document.querySelector('table.drills tbody tr').innerText`); !strings.Contains(got, "passed") || !strings.Contains(got, "1.2s") {
			t.Errorf("the drill's row says:\n%s", got)
		}
		op.screenshot("drills")
		op.axe("the drills page")
	})

	t.Run("the list", func(t *testing.T) {
		op := op.with(t)
		op.open(env.admin + "/ui/")
		op.click("link", "Releases", "nav")
		op.find("heading", "Releases", "main")
		row := eval[string](op, `document.querySelector('table.releases tbody tr').innerText`)
		for _, want := range []string{"v2.0.0", id, "finished", "checkout", "green", "v2", "just now"} {
			if !strings.Contains(row, want) {
				t.Errorf("the release's row does not show %q:\n%s", want, row)
			}
		}
		op.screenshot("releases")
		op.axe("the releases list")
	})

	t.Run("the release shows what it changed", func(t *testing.T) {
		op := op.with(t)
		op.open(env.admin + "/ui/releases")
		op.click("link", "v2.0.0", "main")
		op.find("heading", "What it changed", "main")
		changed := eval[string](op, `document.querySelector('table.changes').innerText`)
		for _, want := range []string{"flag new_payment_flow", "on for 10%", "on for 50%", "traffic to pool green", "100%"} {
			if !strings.Contains(changed, want) {
				t.Errorf("what it changed does not show %q:\n%s", want, changed)
			}
		}
		timeline := eval[string](op, `document.getElementById('rel-timeline').innerText`)
		for _, want := range []string{"deployment version", "v2 takes traffic", "widen payments"} {
			if !strings.Contains(timeline, want) {
				t.Errorf("the timeline does not show %q:\n%s", want, timeline)
			}
		}
		op.axe("the release page")
	})

	t.Run("a ticked option survives a live update and reaches the plan", func(t *testing.T) {
		op := op.with(t)
		op.open(page)
		op.click("checkbox", "Force", "")
		// The user has moved on (focus no longer in a field) when the update comes.
		eval[bool](op, `document.activeElement.blur(); delete document.body.dataset.refreshed; window.notReloaded = true`)
		// A change the release did not make: its plan stays the same.
		env.cli(t, "flag", "checkout", "dark_mode", "5", "--reason", "unrelated")
		op.waitJS("the live update", `!!document.body.dataset.refreshed && window.notReloaded === true`)
		if !eval[bool](op, `document.getElementById('force').checked`) {
			t.Fatal("the live update unticked Force")
		}
		op.click("button", "Roll back this release", "")
		op.waitJS("the plan", `document.querySelector('dialog').open`)
		if got := eval[string](op, `document.querySelector('dialog').innerText`); !strings.Contains(got, "force: what changed since the release is set back too") {
			t.Errorf("the plan does not say it is forced:\n%s", got)
		}
		if !eval[bool](op, `!!document.querySelector('dialog input[name=force][value="1"]')`) {
			t.Error("the dialog's form does not carry force")
		}
		op.click("button", "Cancel", "dialog")
		op.waitJS("the dialog to close", `!document.querySelector('dialog').open`)
	})

	t.Run("a failed step says what to do", func(t *testing.T) {
		op := op.with(t)
		// The pool traffic goes back to is down too: the traffic step
		// refuses to send users to it.
		testharness.SetFault(t, env.blue, `{"healthy": false}`)
		blueHealthy := func(want bool) func() bool {
			return func() bool {
				g, err := env.operator.Guard(ctx, "checkout")
				h, ok := g.Health["blue"]
				return err == nil && ok && h.Healthy == want
			}
		}
		testharness.WaitFor(t, "blue failing its health checks", blueHealthy(false))
		op.open(page)
		op.click("button", "Roll back this release", "")
		op.waitJS("the plan", `document.querySelector('dialog').open`)
		op.fill("textbox", "Reason", "dialog", "payments fail")
		op.click("button", "Confirm", "dialog")
		op.waitJS("the release page", `!!document.querySelector('.flash')`)
		op.waitJS("the failure, shown live", `document.getElementById('rel-status').textContent.includes('rollback failed') &&
			!!document.querySelector('.failure[role=alert]')`)
		alert := eval[string](op, `document.querySelector('.failure').innerText`)
		for _, want := range []string{"Step 2, Traffic back, failed", "pool blue", "fails its health checks", "fix it, or --force"} {
			if !strings.Contains(alert, want) {
				t.Errorf("the failure does not say %q:\n%s", want, alert)
			}
		}
		if got := eval[string](op, `document.getElementById('rel-rollback').innerText`); !strings.Contains(got, "Stopped at step 2 after") {
			t.Errorf("the rollback section does not say where it stopped:\n%s", got)
		}
		op.find("button", "Roll back this release", "")
		op.screenshot("release-rollback-failed")
		op.axe("a failed rollback")
		d, err := env.operator.Status(ctx, "checkout")
		must(t, err)
		if d.Flags["new_payment_flow"].Percent != 10 || d.Weights["green"] != 100 {
			t.Errorf("after the failed traffic step: flag %g%%, weights %v; want the flag back at 10%% and traffic still on green",
				d.Flags["new_payment_flow"].Percent, d.Weights)
		}
		testharness.SetFault(t, env.blue, `{"healthy": true}`)
		testharness.WaitFor(t, "blue healthy again", blueHealthy(true))
	})

	t.Run("keyboard-only rollback, tried again: plan, confirm, followed live until rolled back", func(t *testing.T) {
		op := op.with(t)
		op.open(page)
		op.find("button", "Roll back this release", "")
		focused := `document.activeElement && document.activeElement.textContent.trim() === 'Roll back this release'`
		for i := 0; ; i++ {
			if i == 60 {
				t.Fatal("Roll back this release not reached with Tab")
			}
			op.do(chromedp.KeyEvent(kb.Tab))
			if eval[bool](op, focused) {
				break
			}
		}
		// The plan first; Escape goes back without doing anything.
		op.do(chromedp.KeyEvent(kb.Enter))
		op.waitJS("the plan", `document.querySelector('dialog').open && document.activeElement.id === 'reason'`)
		plan := eval[string](op, `document.querySelector('dialog').innerText`)
		for _, want := range []string{"Nothing has been done yet", "Flags back", "no flag to set back", "Traffic back",
			"blue 0%, green 100% → blue 100%, green 0%", "Schema down", "skipped"} {
			if !strings.Contains(plan, want) {
				t.Errorf("the plan does not show %q:\n%s", want, plan)
			}
		}
		op.dialogScreenshot("release-rollback-plan")
		op.axe("the rollback plan")
		op.do(chromedp.KeyEvent(kb.Escape))
		op.waitJS("focus back on the control", `!document.querySelector('dialog').open && `+focused)
		if r, err := env.operator.Release(ctx, id); err != nil || r.Status != release.RollbackFailed {
			t.Fatalf("release %s (%v) after Escape, want still rollback_failed", r.Status, err)
		}

		op.do(chromedp.KeyEvent(kb.Enter))
		op.waitJS("the plan", `document.querySelector('dialog').open && document.activeElement.id === 'reason'`)
		op.do(chromedp.KeyEvent("v2 fails payments"), chromedp.KeyEvent(kb.Tab))
		if got := eval[string](op, `document.activeElement.textContent.trim()`); got != "Confirm" {
			t.Fatalf("Tab from Reason reaches %q, want Confirm", got)
		}
		op.do(chromedp.KeyEvent(kb.Enter))
		op.waitJS("the release page", `!!document.querySelector('.flash') && document.querySelector('.flash').textContent.includes('Rollback requested')`)
		eval[bool](op, `window.notReloaded = true`)
		op.waitJS("rolled back, shown live", `window.notReloaded === true && document.getElementById('rel-status').textContent.includes('rolled back')`)
		steps := eval[[]string](op, `[...document.querySelectorAll('#rel-rollback table.rollback-steps tbody tr')].map(r =>
			r.cells[0].firstChild.textContent.trim() + ': ' + r.cells[1].textContent.trim())`)
		// The flags came back in the failed attempt; this one had only
		// traffic left to do.
		want := "1. Flags back: skipped,2. Traffic back: done,3. Service configuration back: skipped,4. Schema down: skipped"
		if strings.Join(steps, ",") != want {
			t.Errorf("steps %q, want %s", steps, want)
		}
		if got := eval[string](op, `document.getElementById('rel-rollback').innerText`); !strings.Contains(got, "Finished in") || !strings.Contains(got, "v2 fails payments") {
			t.Errorf("the rollback section does not say how long it took and why:\n%s", got)
		}
		op.screenshot("release-rolled-back")
		op.axe("the rolled-back release")

		env.waitPool(t, "blue")
		d, err := env.operator.Status(ctx, "checkout")
		must(t, err)
		if got := d.Flags["new_payment_flow"].Percent; got != 10 {
			t.Errorf("new_payment_flow at %g%% after the rollback, want 10%%", got)
		}
		r, err := env.operator.Release(ctx, id)
		must(t, err)
		if r.Status != release.RolledBack || r.Rollback.By != "alice" || r.Rollback.Reason != "v2 fails payments" {
			t.Errorf("release %s, rolled back by %q for %q; want rolled_back by alice for %q", r.Status, r.Rollback.By, r.Rollback.Reason, "v2 fails payments")
		}
		if n := len(op.byName("button", "Roll back this release", "")); n != 0 {
			t.Errorf("a rolled-back release offers %d rollback buttons, want none", n)
		}
		op.open(env.admin + "/ui/releases")
		if got := eval[string](op, `document.querySelector('table.releases tbody tr').innerText`); !strings.Contains(got, "rolled back") {
			t.Errorf("the list shows the release as:\n%s", got)
		}
	})
}
