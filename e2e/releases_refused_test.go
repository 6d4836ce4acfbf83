package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
)

// TestReleaseRollbackRefusedThenUndoneByHand follows the README's way
// through a refusal: a release made in one step (--apply) that ran a
// contract migration; its rollback plan says the schema step will be
// refused, the compatibility gate refuses the traffic step, the operator
// runs the commands the refusal names (down, snapshot restore) and asks
// again, and everything, data included, is as before.
func TestReleaseRollbackRefusedThenUndoneByHand(t *testing.T) {
	forEachReleaseDatabase(t, func(t *testing.T, dialect migrate.Dialect) {
		c := newReleaseChain(t, dialect, 1, false)
		apply := filepath.Join(t.TempDir(), "apply.json")
		if err := os.WriteFile(apply, []byte(`{"pool_upstreams": true, "weights": {"blue": 0, "green": 100}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		c.sb(t, "release", "start", "checkout", "v3", "--pool", "green", "--label", "v3", testharness.HostPort(c.bk.Green),
			"--database", "main=3", "--apply", apply, "--reason", "ship v3")
		c.migrate(t, "up")
		if _, err := c.db.Exec("UPDATE orders SET note = 'written by v3'"); err != nil {
			t.Fatal(err)
		}
		c.waitServed(t, "green")

		plan := c.sb(t, "release", "rollback", "v3", "--plan")
		for _, want := range []string{"will be refused", "00003_orders_drop_total.sql", "contract migration", "snapshot restore 3"} {
			if !strings.Contains(plan, want) {
				t.Errorf("the plan does not say %q:\n%s", want, plan)
			}
		}
		c.sb(t, "release", "rollback", "v3", "--reason", "v3 errors")
		testharness.Eventually(t, testharness.Wait, func() (bool, string) {
			r := c.release3(t)
			return r.Status == release.RollbackFailed, "release " + string(r.Status)
		})
		traffic := c.release3(t).Rollback.Steps[1]
		for _, want := range []string{"compatibility gate", "pool blue", "00003_orders_drop_total.sql", "--force"} {
			if traffic.Status != release.StepFailed || !strings.Contains(traffic.Result, want) {
				t.Errorf("traffic step %s: %q; want failed, saying %q", traffic.Status, traffic.Result, want)
			}
		}
		c.waitServed(t, "green") // refused: nothing changed
		if show := c.sb(t, "release", "show", "v3"); !strings.Contains(show, "rollback_failed") || !strings.Contains(show, "compatibility gate") {
			t.Errorf("release show does not say the rollback failed at the gate:\n%s", show)
		}

		// What the refusal says to do, then ask again.
		c.migrate(t, "down", "--to", "2")
		c.migrate(t, "snapshot", "restore", "3")
		c.sb(t, "release", "rollback", "v3", "--reason", "contract undone by hand")
		testharness.Eventually(t, testharness.Wait, func() (bool, string) {
			r := c.release3(t)
			return r.Status == release.RolledBack, fmt.Sprintf("release %s: %+v", r.Status, r.Rollback.Steps)
		})
		c.waitServed(t, "blue")
		// A contract's down cannot add a NOT NULL column back to a table
		// with rows without a default: that default is the one difference
		// it leaves, as migrate verify would say.
		c.schemaSeen = func(s string) string { return contractDefault.ReplaceAllString(s, "$1") }
		for _, d := range c.backAsBefore(t) {
			t.Error(d)
		}
		rows, err := c.db.Query("SELECT id, total FROM orders ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var id, total int
			if err := rows.Scan(&id, &total); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d:%d", id, total))
		}
		if strings.Join(got, " ") != "1:100 2:250" {
			t.Errorf("orders after the rollback %v, want the totals from before the contract, 1:100 2:250", got)
		}
	})
}

var contractDefault = regexp.MustCompile(`(column orders\.total: \w+ NOT NULL) DEFAULT 0`)

func (c *releaseChain) release3(t testing.TB) release.Release {
	t.Helper()
	r, _, err := c.e.Store(t).FindRelease(t.Context(), "v3")
	if err != nil {
		t.Fatal(err)
	}
	return r
}
