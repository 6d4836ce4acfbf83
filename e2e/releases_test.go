package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configclient"
	gw "github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/dbtest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
)

// releaseServices are the services whose configuration the release
// changes with one change set.
var releaseServices = []string{"payments", "search"}

// migrations are database main's: orders (1), an expand adding
// orders.note (2) and a contract dropping orders.total (3). slow, when not
// empty, is a statement the expand's down runs after dropping the column,
// to make the schema step last long enough to kill its driver in the
// middle of it.
func migrations(t testing.TB, slow string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "migrations")
	files := map[string]string{
		"00001_orders.sql": `-- +goose Up
CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);
-- +goose Down
DROP TABLE orders;
`,
		"00002_orders_note.sql": `-- +switchback expand
-- +switchback snapshot orders
-- +goose Up
ALTER TABLE orders ADD COLUMN note TEXT;
-- +goose Down
ALTER TABLE orders DROP COLUMN note;
` + slow,
		"00003_orders_drop_total.sql": `-- +switchback contract
-- +switchback snapshot orders
-- +goose Up
ALTER TABLE orders DROP COLUMN total;
-- +goose Down
ALTER TABLE orders ADD COLUMN total INTEGER NOT NULL DEFAULT 0;
`,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// slowDown is a statement that takes seconds on the dialect.
func slowDown(d migrate.Dialect) string {
	if d == migrate.Postgres {
		return "SELECT pg_sleep(3);\n"
	}
	// SQLite has no sleep: count to a number that takes a few seconds
	// (the race detector slows SQLite, pure Go, tenfold).
	n := 2_000_000
	if raceBuild {
		n = 200_000
	}
	return fmt.Sprintf("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) SELECT count(*) FROM c;\n", n)
}

// releaseChain is deployment checkout on gateway processes sharing one
// etcd, with services payments and search, and database main configured
// in the switchback global option; before is what a rollback of the
// release must give back.
type releaseChain struct {
	dialect migrate.Dialect
	e       *etcdtest.Etcd
	bk      testharness.Backends
	gws     []*gateway
	db      *sql.DB
	watch   *watchers
	// schemaSeen, when set, is applied to the schema dump before it is
	// compared with the one from before the release.
	schemaSeen func(string) string

	before struct {
		config   gw.Config
		services map[string]string
		schema   string
	}
}

// newReleaseChain starts instances gateways with database main of the
// dialect (its expand's down made slow when slow), creates the services
// and migrates main to 1, as things stand before the release.
func newReleaseChain(t testing.TB, dialect migrate.Dialect, instances int, slow bool) *releaseChain {
	t.Helper()
	c := &releaseChain{dialect: dialect, e: etcdtest.Start(t), bk: testharness.StartBackends(t)}
	tg, db := dbtest.Scratch(t, dialect)
	c.db = db
	extra := ""
	if slow {
		extra = slowDown(dialect)
	}
	global := fmt.Sprintf("database main %s {\n\t\t\tmigrations %s\n\t\t}", tg.URL, migrations(t, extra))
	site := fmt.Sprintf(`switchback checkout {
		pool blue %s {
			release v1
		}
		pool green %s {
			release v0
		}
		live blue
		sticky header X-User-ID
		flag new_cart 5
		health_uri /health
		health_interval 500ms
	}`, testharness.HostPort(c.bk.Blue), testharness.HostPort(c.bk.Green))
	for i := range instances {
		c.gws = append(c.gws, startGatewayWith(t, fmt.Sprintf("gw-%d", i), c.e, site, "", global))
	}

	c.sb(t, "config", "put", "payments", `{"db": {"pool": {"max": 20}}, "timeout_ms": 1000}`, "--reason", "initial")
	c.sb(t, "config", "put", "search", `{"timeout_ms": 800}`, "--reason", "initial")
	c.migrate(t, "up", "--to", "1")
	if _, err := db.Exec("INSERT INTO orders (id, total) VALUES (1, 100), (2, 250)"); err != nil {
		t.Fatal(err)
	}
	c.watch = startWatchers(t, c.gws[len(c.gws)-1].adminURL)
	c.watch.waitFor(t, map[string]uint64{"payments": 1, "search": 1})

	c.before.config = c.deployment(t)
	c.before.services = c.services(t)
	c.before.schema = c.schema(t)
	return c
}

// forward makes release v2 as an operator would from the command line:
// start, raise a flag, put v2 on green and move all traffic there, one
// change set over both services, the expand migration, finish.
func (c *releaseChain) forward(t testing.TB) {
	t.Helper()
	green := testharness.HostPort(c.bk.Green)
	c.sb(t, "release", "start", "checkout", "v2", "--pool", "green", "--label", "v2", green, "--database", "main=1..2", "--reason", "ship v2")
	c.sb(t, "flag", "checkout", "new_cart", "50", "--reason", "v2 cart")
	c.sb(t, "pool", "checkout", "green", green, "--release", "v2", "--reason", "v2 build")
	c.sb(t, "weights", "checkout", "blue=0", "green=100", "--reason", "v2 to all")
	changes := filepath.Join(t.TempDir(), "v2.json")
	if err := os.WriteFile(changes, []byte(`{"reason": "v2 config", "changes": [
		{"service": "payments", "patch": {"db": {"pool": {"max": 50}}, "timeout_ms": 2000}},
		{"service": "search", "patch": {"timeout_ms": 2000}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.sb(t, "changeset", "apply", changes)
	c.migrate(t, "up", "--to", "2")
	c.sb(t, "release", "finish", "v2")
	c.watch.waitFor(t, map[string]uint64{"payments": 2, "search": 2})
	c.waitServed(t, "green")
	if got := c.schema(t); got == c.before.schema {
		t.Fatalf("the expand migration left the schema as it was:\n%s", got)
	}
}

// sb runs a switchback command against the admin API of the first gateway
// still running and returns its output, failing the test if it fails.
func (c *releaseChain) sb(t testing.TB, args ...string) string {
	t.Helper()
	return c.sbOn(t, c.live()[0], args...)
}

func (c *releaseChain) sbOn(t testing.TB, g *gateway, args ...string) string {
	t.Helper()
	out, err := c.run(g, args...)
	if err != nil {
		t.Fatalf("switchback %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *releaseChain) run(g *gateway, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "SWITCHBACK_ADMIN="+g.adminURL)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// migrate runs "switchback migrate --database main" with the gateway's
// own Caddyfile, as an operator on the gateway's host would.
func (c *releaseChain) migrate(t testing.TB, args ...string) string {
	t.Helper()
	return c.sb(t, append([]string{"migrate", "--database", "main", "--config", c.gws[0].config}, args...)...)
}

// live is a gateway still running.
func (c *releaseChain) live() []*gateway {
	var out []*gateway
	for _, g := range c.gws {
		select {
		case <-g.done:
		default:
			out = append(out, g)
		}
	}
	return out
}

func (c *releaseChain) deployment(t testing.TB) gw.Config {
	t.Helper()
	doc, err := c.e.Store(t).Get(context.Background(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	cfg := doc.Config
	cfg.Version = 0 // a rollback writes a new version with the old content
	return cfg
}

func (c *releaseChain) services(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range releaseServices {
		sd, err := c.e.Store(t).GetService(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(sd.Config)
	}
	return out
}

func (c *releaseChain) schema(t testing.TB) string {
	t.Helper()
	sc, err := migrate.DumpSchema(context.Background(), c.dialect, c.db)
	if err != nil {
		t.Fatal(err)
	}
	return sc.String()
}

func (c *releaseChain) release(t testing.TB) release.Release {
	t.Helper()
	r, _, err := c.e.Store(t).FindRelease(context.Background(), "v2")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitServed waits until every live gateway sends every probed user to
// pool.
func (c *releaseChain) waitServed(t testing.TB, pool string) {
	t.Helper()
	for _, g := range c.live() {
		testharness.Eventually(t, testharness.Wait, func() (bool, string) {
			for i := range 20 {
				got, _, err := g.served(t, fmt.Sprintf("user-%d", i))
				if err != nil || got != pool {
					return false, fmt.Sprintf("gateway %s sends user-%d to %q (%v), want %s", g.name, i, got, err, pool)
				}
			}
			return true, ""
		})
	}
}

// backAsBefore is empty when the deployment's content, the services'
// configurations (in the store and as a watcher last received them) and
// main's schema are what they were before the release; else it says what
// differs.
func (c *releaseChain) backAsBefore(t testing.TB) []string {
	t.Helper()
	var diffs []string
	if got, want := c.deployment(t), c.before.config; !reflect.DeepEqual(got, want) {
		diffs = append(diffs, fmt.Sprintf("deployment:\n%+v\nwant as before the release:\n%+v", got, want))
	}
	if got, want := c.services(t), c.before.services; !reflect.DeepEqual(got, want) {
		diffs = append(diffs, fmt.Sprintf("services %v, want %v", got, want))
	}
	for _, name := range releaseServices {
		if got, want := c.watch.config(name), c.before.services[name]; !sameJSON(got, want) {
			diffs = append(diffs, fmt.Sprintf("a watcher of %s has %s, want %s", name, got, want))
		}
	}
	got := c.schema(t)
	if c.schemaSeen != nil {
		got = c.schemaSeen(got)
	}
	if want := c.before.schema; got != want {
		diffs = append(diffs, fmt.Sprintf("schema:\n%s\nwant as before the release:\n%s", got, want))
	}
	return diffs
}

func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// watchers follow the services' configurations through configclient, as
// the services themselves would.
type watchers struct {
	gateway string     // the admin API they watch
	mu      sync.Mutex // guards last
	last    map[string]configclient.Version
}

func startWatchers(t testing.TB, adminURL string) *watchers {
	t.Helper()
	w := &watchers{gateway: adminURL, last: map[string]configclient.Version{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range releaseServices {
		wg.Go(func() {
			_ = configclient.Watch(ctx, configclient.Options{URL: adminURL, Service: name}, func(_ json.RawMessage, v configclient.Version) {
				w.mu.Lock()
				w.last[name] = v
				w.mu.Unlock()
			})
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

func (w *watchers) config(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.last[name].Config)
}

// at reports whether every watcher has received at least the versions.
func (w *watchers) at(versions map[string]uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, v := range versions {
		if w.last[name].Version < v {
			return false
		}
	}
	return true
}

func (w *watchers) waitFor(t testing.TB, versions map[string]uint64) {
	t.Helper()
	testharness.WaitFor(t, fmt.Sprintf("watchers at %v", versions), func() bool { return w.at(versions) })
}

func forEachReleaseDatabase(t *testing.T, fn func(t *testing.T, dialect migrate.Dialect)) {
	for _, d := range []migrate.Dialect{migrate.SQLite, migrate.Postgres} {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}

// TestReleaseRollbackFullChain: a release made from the command line
// (flag, pool, weights, a change set over two services, an expand
// migration) and rolled back with one command leaves the deployment,
// flags, services (as their watchers see them) and schema as they were,
// with traffic on blue at every instance.
func TestReleaseRollbackFullChain(t *testing.T) {
	forEachReleaseDatabase(t, func(t *testing.T, dialect migrate.Dialect) {
		c := newReleaseChain(t, dialect, 2, false)
		c.forward(t)

		plan := c.sb(t, "release", "rollback", "v2", "--plan")
		for _, want := range []string{"plan for the rollback", "1. flags", "2. traffic", "3. config", "4. schema"} {
			if !strings.Contains(plan, want) {
				t.Errorf("release rollback --plan does not say %q:\n%s", want, plan)
			}
		}
		if got := c.release(t).Status; got != release.Finished {
			t.Fatalf("after --plan the release is %s, want finished (unchanged)", got)
		}

		began := time.Now()
		out := c.sb(t, "release", "rollback", "v2", "--reason", "checkout errors")
		if !strings.Contains(out, "requested") {
			t.Errorf("release rollback says:\n%s\nwant that the rollback was requested", out)
		}
		testharness.Eventually(t, testharness.Wait, func() (bool, string) {
			r := c.release(t)
			return r.Status == release.RolledBack, fmt.Sprintf("release %s: %+v", r.Status, r.Rollback)
		})
		c.waitServed(t, "blue")
		c.watch.waitFor(t, map[string]uint64{"payments": 3, "search": 3})
		t.Logf("%s: from release rollback to every part back: %s", dialect, time.Since(began).Round(time.Millisecond))
		for _, d := range c.backAsBefore(t) {
			t.Error(d)
		}
		if got := c.deployment(t).Flags["new_cart"].Percent; got != 5 {
			t.Errorf("flag new_cart at %v%%, want 5%% as before", got)
		}

		r := c.release(t)
		for i, s := range r.Rollback.Steps {
			if s.Kind != release.StepOrder[i] || s.Status != release.StepDone {
				t.Errorf("step %d: %s %s %q, want %s done", i+1, s.Kind, s.Status, s.Result, release.StepOrder[i])
			}
		}
		show := c.sb(t, "release", "show", "v2")
		for _, want := range []string{"rolled_back", "rollback requested", "schema"} {
			if !strings.Contains(show, want) {
				t.Errorf("release show does not say %q:\n%s", want, show)
			}
		}
		if again := c.sb(t, "release", "rollback", "v2"); !strings.Contains(again, "rolled back already") {
			t.Errorf("a second rollback says:\n%s\nwant that it was rolled back already", again)
		}
	})
}
