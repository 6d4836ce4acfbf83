package caddymodule

import (
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	dto "github.com/prometheus/client_model/go"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/criteria"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
	"github.com/a8e2c47e/switchback/migrate"
)

// TestCriterionCaddyfileErrors: a bad criterion or database line is
// refused with the file, the line, the value and what is accepted.
func TestCriterionCaddyfileErrors(t *testing.T) {
	const pools = "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\n"
	site := func(crit string) string {
		return ":8080 {\n\tswitchback checkout {\n" + pools + "guard {\nerror_rate 5%\n" + crit + "\n}\n\t}\n}\n"
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown kind", site("criterion q graphite http://127.0.0.1:1 x above 1"), []string{`kind "graphite"`, "database, prometheus or http", "Caddyfile:7"}},
		{"database above without %", site("criterion db database main above 90"), []string{`above "90"`, "like 90%", "Caddyfile:7"}},
		{"database above 120%", site("criterion db database main above 120%"), []string{`above "120%"`, "0 to 100", "Caddyfile:7"}},
		{"prometheus missing above", site(`criterion q prometheus http://127.0.0.1:9090 "sum(x)"`), []string{"missing 'above THRESHOLD'", "Caddyfile:7"}},
		{"prometheus bad url", site(`criterion q prometheus 127.0.0.1:9090 "sum(x)" above 5`), []string{"url", "want an http:// or https:// URL", "Caddyfile:7"}},
		{"prometheus above not a number", site(`criterion q prometheus http://127.0.0.1:9090 "sum(x)" above lots`), []string{`above "lots"`, "Caddyfile:7"}},
		{"http bad status", site("criterion h http http://127.0.0.1:9400/health status 999"), []string{"status", "999", "100 to 599", "Caddyfile:7"}},
		{"http missing status", site("criterion h http http://127.0.0.1:9400/health within 1s"), []string{"missing 'status CODE'", "Caddyfile:7"}},
		{"bad for", site("criterion h http http://127.0.0.1:9400/health status 200 for soon"), []string{`for "soon"`, "positive duration", "Caddyfile:7"}},
		{"unknown setting", site("criterion h http http://127.0.0.1:9400/health status 200 above 3"), []string{`unknown setting "above"`, "Caddyfile:7"}},
		{"setting without value", site("criterion h http http://127.0.0.1:9400/health status 200 for"), []string{"for needs a value", "Caddyfile:7"}},
		{"bad name", site("criterion \"no good\" http http://127.0.0.1:9400/health status 200"), []string{`"no good"`, "Caddyfile:7"}},
		{"two criteria one name", site("criterion h http http://127.0.0.1:1/ status 200\ncriterion h http http://127.0.0.1:2/ status 200"), []string{`"h"`, "no other criterion", "Caddyfile:"}},
		{"database without dsn", "{\n\tswitchback {\n\t\tdatabase main\n\t}\n}\n" + site(""), []string{"want 'database NAME DSN'", "Caddyfile:3"}},
		{"fleet neither on nor off", "{\n\tswitchback {\n\t\tfleet maybe\n\t}\n}\n" + site(""), []string{`fleet "maybe": want on or off`, "Caddyfile:3"}},
		{"database twice", "{\n\tswitchback {\n\t\tdatabase main postgres://a@h/db\n\t\tdatabase main postgres://b@h/db\n\t}\n}\n" + site(""), []string{"database main given twice", "Caddyfile:4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantAdaptError(t, tt.src, tt.want)
		})
	}
}

// TestCriterionCaddyfileAdapts: the three criteria of the README adapt
// into the guard, and a database's DSN stays in the app's config.
func TestCriterionCaddyfileAdapts(t *testing.T) {
	src := `{
	switchback {
		database main {env.MAIN_DB}
	}
}
:8080 {
	switchback checkout {
		pool blue 127.0.0.1:1
		pool green 127.0.0.1:2
		guard {
			criterion db_connections database main above 90%
			criterion queue prometheus http://127.0.0.1:9090 "sum(rabbitmq_queue_messages_ready)" above 5000 for 1m
			criterion payments_health http http://127.0.0.1:9400/health status 200 within 500ms
		}
	}
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"databases":{"main":"{env.MAIN_DB}"}`,
		// Caddy writes object keys sorted.
		`{"above":90,"database":"main","kind":"database","name":"db_connections"}`,
		`{"above":5000,"for":"1m0s","kind":"prometheus","name":"queue","query":"sum(rabbitmq_queue_messages_ready)","url":"http://127.0.0.1:9090"}`,
		`{"kind":"http","name":"payments_health","status":200,"url":"http://127.0.0.1:9400/health","within":"500ms"}`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
}

// TestCriterionRollsBackOnPostgres is the criterion end to end on a real
// PostgreSQL: the gateway (the elected instance) counts the server's
// connections; a flag is raised; connections are opened past the
// threshold; the guard rolls the raise back with a reason that names the
// criterion and its value, shows the value in /guard and in metrics.
func TestCriterionRollsBackOnPostgres(t *testing.T) {
	dsn := os.Getenv("SWITCHBACK_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("SWITCHBACK_TEST_POSTGRES not set")
	}
	probe, err := criteria.OpenDatabase("main", dsn)
	if err != nil {
		t.Fatal(err)
	}
	used, maxConns, err := probe.Connections(t.Context())
	probe.Close()
	if err != nil {
		t.Fatal(err)
	}
	const margin, extra = 6, 16 // room for other tests' connections; bounded
	if used+extra >= maxConns {
		t.Skipf("server too busy: %d of %d connections", used, maxConns)
	}
	above := 100 * float64(used+margin) / float64(maxConns)
	t.Setenv("SWITCHBACK_CRITERION_DB", dsn)

	e := etcdtest.Start(t)
	store := e.Store(t)
	ups := testharness.StartBackends(t)
	caddytest.Start(t,
		fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t\tdatabase main {env.SWITCHBACK_CRITERION_DB}\n\t}", e.Endpoint(), t.TempDir()),
		fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		sticky header X-User-ID
		flag new_cart 10
		guard {
			error_rate 50%%
			window 30s
			cooldown 1s
			criterion db_connections database main above %.2f%% interval 200ms
		}
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green), above))
	app := runningApp(t)
	waitView(t, app, "the criterion measured, under its threshold", func(v guard.View) bool {
		c, ok := v.Criteria["db_connections"]
		return ok && c.Text != "" && c.Breach == ""
	})

	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	raised, err := store.Update(t.Context(), "checkout", doc.Meta.Version, configstore.Meta{Author: "alice", Source: configstore.SourceAPI, Reason: "ramp new_cart"},
		func(c *gateway.Config) error {
			c.Flags["new_cart"] = gateway.Flag{Percent: 60}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	holdPostgres(t, dsn, extra)

	var back configstore.Document
	testharness.WaitFor(t, "the criterion to roll the raise back", func() bool {
		back, err = store.Get(t.Context(), "checkout")
		return err == nil && back.Meta.Version > raised.Doc.Meta.Version
	})
	if back.Meta.Source != configstore.SourceGuard || back.Config.Flags["new_cart"].Percent != 10 {
		t.Fatalf("version %+v with new_cart at %g%%; want the guard's, back at 10%%", back.Meta, back.Config.Flags["new_cart"].Percent)
	}
	for _, w := range []string{"criterion db_connections", "% of connections (", fmt.Sprintf("of %d)", maxConns), fmt.Sprintf("rolling back v%d", raised.Doc.Meta.Version), "flag new_cart raised 10% → 60%"} {
		if !strings.Contains(back.Meta.Reason, w) {
			t.Errorf("history reason %q does not say %q", back.Meta.Reason, w)
		}
	}
	if strings.Contains(back.Meta.Reason, "postgres://") {
		t.Errorf("history reason shows the DSN: %q", back.Meta.Reason)
	}
	evs := waitEvents(t, store, 1)
	if evs[0].Kind != control.EventCriterionRollback || evs[0].Subject != "criterion:db_connections" || evs[0].Reason != back.Meta.Reason {
		t.Errorf("event %+v; want a criterion_rollback with the history's reason", evs[0])
	}
	v := waitView(t, app, "the breach in /guard", func(v guard.View) bool { return v.Criteria["db_connections"].Breach != "" })
	if got := v.Criteria["db_connections"].Value; got <= above {
		t.Errorf("/guard value %g, want above %g", got, above)
	}
	if got := criterionGauge(t, app, "db_connections"); got <= above {
		t.Errorf("metric switchback_guard_criterion_value %g, want above %g", got, above)
	}
}

// holdPostgres opens n more connections until the test ends.
func holdPostgres(t *testing.T, dsn string, n int) {
	t.Helper()
	target, err := migrate.ParseTarget(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := sql.Open("pgx", target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	for range n {
		c, err := pool.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// criterionGauge reads switchback_guard_criterion_value of checkout's
// criterion.
func criterionGauge(t *testing.T, app *App, name string) float64 {
	t.Helper()
	var m dto.Metric
	if err := app.crit.value.WithLabelValues("checkout", name).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestCriterionWithoutChangeOnlyReports: a Prometheus criterion breaching
// when nothing changed within its window writes no version; an event says
// so with the query's value.
func TestCriterionWithoutChangeOnlyReports(t *testing.T) {
	var depth atomic.Int64
	depth.Store(10)
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"%d"]}]}}`, depth.Load())
	}))
	t.Cleanup(prom.Close)
	_, _, store := guardedGateway(t, fmt.Sprintf(`
		guard {
			error_rate 50%%
			window 2s
			criterion queue prometheus %s "sum(rabbitmq_queue_messages_ready)" above 5000 for 300ms interval 100ms
		}`, prom.URL))
	app := runningApp(t)
	waitView(t, app, "the query's value", func(v guard.View) bool { return v.Criteria["queue"].Value == 10 })
	// Let the bootstrap leave the window, so no change is recent.
	waitView(t, app, "the bootstrap out of the window", func(v guard.View) bool {
		doc, err := store.Get(t.Context(), "checkout")
		return err == nil && v.Updated.Sub(doc.Meta.Time) > 2*time.Second
	})
	depth.Store(5210)
	evs := waitEvents(t, store, 1)
	if evs[0].Kind != control.EventCriterionBreach || !strings.Contains(evs[0].Reason, "sum(rabbitmq_queue_messages_ready) = 5210 > 5000") ||
		!strings.Contains(evs[0].Reason, "no change within 2s") {
		t.Errorf("event %+v; want a criterion_breach with the value and no change to roll back", evs[0])
	}
	if doc, err := store.Get(t.Context(), "checkout"); err != nil || doc.Meta.Version != 1 {
		t.Errorf("version %d (%v); want nothing written", doc.Meta.Version, err)
	}
}
