package databases_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/migrate"
)

const (
	createOrders = `-- +goose Up
CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);
CREATE TABLE legacy (id INTEGER PRIMARY KEY);

-- +goose Down
DROP TABLE legacy;
DROP TABLE orders;
`
	// repriceOrders changes every row; its down can only guess the old
	// totals back, the snapshot knows them.
	repriceOrders = `-- +switchback snapshot orders
-- +goose Up
UPDATE orders SET total = total * 3 + 1;

-- +goose Down
UPDATE orders SET total = (total - 1) / 3;
`
	dropLegacy = `-- +switchback contract
-- +switchback snapshot legacy
-- +goose Up
DROP TABLE legacy;

-- +goose Down
CREATE TABLE legacy (id INTEGER PRIMARY KEY);
`
	addAudit = `-- +goose Up
CREATE TABLE audit (id INTEGER PRIMARY KEY);
`
)

// dialects are the servers a test runs on: SQLite always, PostgreSQL and
// MariaDB when their variables are set (the subtest skips, saying so,
// otherwise).
var dialects = []struct {
	name string
	env  string
}{
	{"sqlite", ""},
	{"postgres", testharness.PostgresEnv},
	{"mysql", testharness.MySQLEnv},
}

// forEachDialect runs fn in a parallel subtest per database server, with
// the address of an empty scratch database dropped when the test ends.
func forEachDialect(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			raw := "sqlite:unused.db"
			if d.env != "" {
				raw = testharness.DatabaseURL(t, d.env)
			}
			base, err := migrate.ParseTarget(raw)
			if err != nil {
				t.Fatal(err)
			}
			s, drop, err := migrate.Scratch(context.Background(), base)
			if err != nil {
				t.Fatalf("scratch database: %v", err)
			}
			t.Cleanup(func() {
				if err := drop(); err != nil {
					t.Errorf("drop scratch database: %v", err)
				}
			})
			fn(t, s.URL) // no password in the test servers' addresses
		})
	}
}

// migrations writes a migrations directory of name, content pairs.
func migrations(t *testing.T, kv ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := os.WriteFile(filepath.Join(dir, kv[i]), []byte(kv[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// up applies dir's migrations up to version to, as `switchback migrate up`
// would, and returns the migrator for inspecting the database.
func up(t *testing.T, dsn, dir string, to int64, opts ...migrate.Option) *migrate.Migrator {
	t.Helper()
	m, err := migrate.Open(t.Context(), dsn, os.DirFS(dir), opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if to > 0 {
		if _, err := m.Up(t.Context(), to); err != nil {
			t.Fatalf("up to %d: %v", to, err)
		}
	}
	return m
}

func registry(t *testing.T, configs ...databases.Config) *databases.Registry {
	t.Helper()
	r, err := databases.New(configs)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func exec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("exec %q: %v", s, err)
		}
	}
}

func totals(t *testing.T, db *sql.DB) []int64 {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT total FROM orders ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func versionsOf(ss []migrate.Status) []int64 {
	var out []int64
	for _, s := range ss {
		out = append(out, s.Version)
	}
	return out
}

// TestVersionAndApplied: after an up the registry reads the goose version,
// the applied migrations with their phases, what is pending and the last
// contract; before any up the version is 0.
func TestVersionAndApplied(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dsn string) {
		dir := migrations(t, "00001_orders.sql", createOrders, "00002_reprice.sql", repriceOrders,
			"00003_drop_legacy.sql", dropLegacy, "00004_audit.sql", addAudit)
		m := up(t, dsn, dir, 0)
		r := registry(t, databases.Config{Name: "main", DSN: dsn, Migrations: dir})

		if v, err := r.Version(t.Context(), "main"); err != nil || v != 0 {
			t.Fatalf("Version before any up = %d, %v; want 0", v, err)
		}
		if _, err := m.Up(t.Context(), 3); err != nil {
			t.Fatalf("up to 3: %v", err)
		}
		if v, err := r.Version(t.Context(), "main"); err != nil || v != 3 {
			t.Fatalf("Version = %d, %v; want 3", v, err)
		}
		got, err := r.Applied(t.Context(), "main")
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{1, 2, 3}; !slices.Equal(versionsOf(got), want) {
			t.Fatalf("Applied versions = %v, want %v", versionsOf(got), want)
		}
		if got[2].Phase != migrate.PhaseContract || got[2].File != "00003_drop_legacy.sql" || got[0].Phase != migrate.PhaseExpand {
			t.Errorf("Applied = %+v; want 1 expand and 3 the contract 00003_drop_legacy.sql", got)
		}
		if !slices.Equal(got[1].Snapshot, []string{"orders"}) {
			t.Errorf("Applied[1].Snapshot = %v, want [orders]", got[1].Snapshot)
		}

		infos := r.Describe(t.Context())
		if len(infos) != 1 {
			t.Fatalf("Describe = %+v, want one database", infos)
		}
		info := infos[0]
		if info.Error != "" || info.Version != 3 || info.Pending != 1 || info.Migrations != dir {
			t.Errorf("Describe = %+v; want version 3, 1 pending, migrations %s", info, dir)
		}
		if lc := info.LastContract; lc == nil || lc.Version != 3 || lc.File != "00003_drop_legacy.sql" || lc.AppliedAt.IsZero() {
			t.Errorf("LastContract = %+v; want 3 (00003_drop_legacy.sql) with its time", lc)
		}
	})
}

// TestPlanDownRefuses: a down through a contract migration, or through
// one without a Down section, is refused before anything changes, with a
// message naming the migration and the commands that undo it by hand.
func TestPlanDownRefuses(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dsn string) {
		dir := migrations(t, "00001_orders.sql", createOrders, "00002_reprice.sql", repriceOrders,
			"00003_drop_legacy.sql", dropLegacy, "00004_audit.sql", addAudit)
		up(t, dsn, dir, 4, migrate.WithAllowIrreversible())
		r := registry(t, databases.Config{Name: "main", DSN: dsn, Migrations: dir})

		tests := []struct {
			name string
			to   int64
			want databases.RefusedError
			says []string
		}{
			{"irreversible", 3, databases.RefusedError{Database: "main", Version: 4, File: "00004_audit.sql", Before: 3, Irreversible: true},
				[]string{"database main: migration 4 (00004_audit.sql)", "no Down section", "nothing was changed",
					"took no data snapshot", "`switchback migrate --database main snapshot restore 4`", "`switchback migrate --database main down --to 3 --allow-irreversible`"}},
			{"contract behind an irreversible", 1, databases.RefusedError{Database: "main", Version: 4, File: "00004_audit.sql", Before: 3, Irreversible: true}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				checkRefused(t, r, tt.to, tt.want, tt.says)
			})
		}

		// With 4 rolled back by hand, the contract is the next refusal.
		m := up(t, dsn, dir, 0, migrate.WithAllowIrreversible())
		if _, err := m.Down(t.Context(), 3); err != nil {
			t.Fatal(err)
		}
		checkRefused(t, r, 2, databases.RefusedError{Database: "main", Version: 3, File: "00003_drop_legacy.sql", Before: 2,
			Restore: "switchback migrate --database main snapshot restore 3"},
			[]string{"database main: migration 3 (00003_drop_legacy.sql)", "contract migration", "nothing was changed",
				"then `switchback migrate --database main snapshot restore 3` to put back the rows", "`switchback migrate --database main down --to 2`,"})
		if plan, err := r.PlanDown(t.Context(), "main", 3); err != nil || len(plan) != 0 {
			t.Errorf("PlanDown to the current version = %+v, %v; want nothing to undo", plan, err)
		}
		if v, err := r.Version(t.Context(), "main"); err != nil || v != 3 {
			t.Errorf("after the refusals Version = %d, %v; want 3, unchanged", v, err)
		}
	})
}

// checkRefused asserts that PlanDown and Down to version to refuse with
// want, saying says, and that the refused Down changed nothing.
func checkRefused(t *testing.T, r *databases.Registry, to int64, want databases.RefusedError, says []string) {
	t.Helper()
	before, err := r.Version(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name string
		run  func() ([]migrate.Status, error)
	}{
		{"PlanDown", func() ([]migrate.Status, error) { return r.PlanDown(t.Context(), "main", to) }},
		{"Down", func() ([]migrate.Status, error) { return r.Down(t.Context(), "main", to, true) }},
	} {
		got, err := call.run()
		var re *databases.RefusedError
		if !errors.As(err, &re) || !errors.Is(err, databases.ErrRefused) {
			t.Fatalf("%s to %d = %+v, %v; want a *RefusedError", call.name, to, got, err)
		}
		if re.Database != want.Database || re.Version != want.Version || re.File != want.File || re.Before != want.Before || re.Irreversible != want.Irreversible || re.Restore != want.Restore || re.Reason == "" {
			t.Errorf("%s to %d refused %+v; want %+v", call.name, to, *re, want)
		}
		t.Logf("%s to %d: %v", call.name, to, err)
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s to %d: %q does not say %q", call.name, to, err, s)
			}
		}
	}
	if v, err := r.Version(t.Context(), "main"); err != nil || v != before {
		t.Errorf("after a refused Down, Version = %d, %v; want %d", v, err, before)
	}
}

// TestDownRestoresData: Down undoes the migrations above the target, and
// with restoreData puts back the rows each snapshotted, dropping what was
// written since; without it only the down sections run.
func TestDownRestoresData(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dsn string) {
		dir := migrations(t, "00001_orders.sql", createOrders, "00002_reprice.sql", repriceOrders)
		m := up(t, dsn, dir, 1)
		exec(t, m.DB(), "INSERT INTO orders (id, total) VALUES (1, 10), (2, 20), (3, 31)")
		if _, err := m.Up(t.Context(), 2); err != nil {
			t.Fatal(err)
		}
		// Rows the bad release wrote: one changed, one added.
		exec(t, m.DB(), "UPDATE orders SET total = 500 WHERE id = 1", "INSERT INTO orders (id, total) VALUES (4, 1000)")
		r := registry(t, databases.Config{Name: "main", DSN: dsn, Migrations: dir})

		plan, err := r.PlanDown(t.Context(), "main", 1)
		if err != nil || !slices.Equal(versionsOf(plan), []int64{2}) {
			t.Fatalf("PlanDown to 1 = %v, %v; want [2]", versionsOf(plan), err)
		}
		got, err := r.Down(t.Context(), "main", 1, true)
		if err != nil {
			t.Fatalf("Down: %v", err)
		}
		if len(got) != 1 || got[0].Version != 2 || got[0].State != "pending" || got[0].File != "00002_reprice.sql" {
			t.Errorf("Down returned %+v; want 00002_reprice.sql, now pending", got)
		}
		if v, err := r.Version(t.Context(), "main"); err != nil || v != 1 {
			t.Errorf("Version after Down = %d, %v; want 1", v, err)
		}
		if got, want := totals(t, m.DB()), []int64{10, 20, 31}; !slices.Equal(got, want) {
			t.Errorf("totals after Down with restoreData = %v, want the snapshot's %v", got, want)
		}
		if got, err := r.Down(t.Context(), "main", 1, true); err != nil || len(got) != 0 {
			t.Errorf("a second Down = %+v, %v; want nothing undone", got, err)
		}

		// Without restoreData only the down section runs: the row written
		// since stays, and the changed one is whatever the down computes.
		if _, err := m.Up(t.Context(), 2); err != nil {
			t.Fatal(err)
		}
		exec(t, m.DB(), "INSERT INTO orders (id, total) VALUES (5, 1)")
		if _, err := r.Down(t.Context(), "main", 1, false); err != nil {
			t.Fatal(err)
		}
		if got, want := totals(t, m.DB()), []int64{10, 20, 31, 0}; !slices.Equal(got, want) {
			t.Errorf("totals after Down without restoreData = %v, want %v", got, want)
		}
	})
}

// TestBadInput: an unknown name, a version that is no migration's, a
// database without a migrations directory and a server that does not
// answer are clear errors; none shows a password.
func TestBadInput(t *testing.T) {
	dir := migrations(t, "00001_orders.sql", createOrders)
	const password = "s3cret-pw"
	sqlite := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	up(t, sqlite, dir, 1)
	r := registry(t,
		databases.Config{Name: "main", DSN: sqlite, Migrations: dir},
		databases.Config{Name: "bare", DSN: sqlite},
		// Nothing listens on port 1.
		databases.Config{Name: "down", DSN: "postgres://app:" + password + "@127.0.0.1:1/app?connect_timeout=2", Migrations: dir},
	)
	if got, want := r.Names(), []string{"bare", "down", "main"}; !slices.Equal(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}

	var fe *gateway.FieldError
	_, err := r.Version(t.Context(), "orders")
	if !errors.As(err, &fe) || fe.Field != "database" || fe.Value != `"orders"` || !strings.Contains(fe.Want, "bare, down, main") {
		t.Errorf("unknown name: %v; want a FieldError on database naming the configured ones", err)
	}
	_, err = r.PlanDown(t.Context(), "main", 7)
	if !errors.As(err, &fe) || fe.Field != "to" || fe.Value != "7" || !strings.Contains(fe.Want, "0 (roll back everything), 1") {
		t.Errorf("PlanDown to 7: %v; want a FieldError on to listing 0 and 1", err)
	}
	if v, err := r.Version(t.Context(), "bare"); err != nil || v != 1 {
		t.Errorf("Version without a migrations directory = %d, %v; want 1", v, err)
	}
	_, err = r.Applied(t.Context(), "bare")
	if !errors.As(err, &fe) || fe.Field != "database bare migrations" || !strings.Contains(fe.Want, "database bare DSN { migrations DIR }") {
		t.Errorf("Applied without a migrations directory: %v; want a FieldError saying how to add one", err)
	}

	for _, call := range []func() error{
		func() error { _, err := r.Version(t.Context(), "down"); return err },
		func() error { _, err := r.Applied(t.Context(), "down"); return err },
		func() error { _, err := r.Down(t.Context(), "down", 0, false); return err },
	} {
		err := call()
		if !errors.Is(err, databases.ErrUnreachable) || !strings.Contains(err.Error(), "database down: cannot connect: ") {
			t.Errorf("unreachable server: %v; want ErrUnreachable naming database down", err)
		}
		if err != nil && (strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "postgres://")) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	infos := r.Describe(t.Context())
	if len(infos) != 3 || infos[1].Name != "down" || !strings.Contains(infos[1].Error, "cannot connect") || infos[2].Version != 1 {
		t.Errorf("Describe = %+v; want down's error and main's version", infos)
	}

	newTests := []struct {
		name   string
		config databases.Config
		field  string
		says   string
	}{
		{"bad name", databases.Config{Name: "no spaces", DSN: sqlite}, "database", "A-Z"},
		{"empty dsn", databases.Config{Name: "main", DSN: ""}, "database main", "unset environment variable"},
		{"bad scheme", databases.Config{Name: "main", DSN: "oracle://u:" + password + "@h/db"}, "database main", "unknown scheme"},
		{"missing dir", databases.Config{Name: "main", DSN: sqlite, Migrations: filepath.Join(dir, "nope")}, "database main migrations", "directory of NUMBER_name.sql"},
	}
	for _, tt := range newTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := databases.New([]databases.Config{tt.config})
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("New: %v; want a FieldError on %q saying %q", err, tt.field, tt.says)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	if _, err := databases.New([]databases.Config{{Name: "a", DSN: sqlite}, {Name: "a", DSN: sqlite}}); !errors.As(err, &fe) || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("New with a name twice: %v; want a FieldError", err)
	}
}

// TestPlanDownRefusesUnknownMigration: a version applied from a file the
// gateway's directory lacks has no known down, so the plan stops there.
func TestPlanDownRefusesUnknownMigration(t *testing.T) {
	full := migrations(t, "00001_orders.sql", createOrders, "00002_reprice.sql", repriceOrders)
	older := migrations(t, "00001_orders.sql", createOrders)
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	up(t, dsn, full, 2)
	r := registry(t, databases.Config{Name: "main", DSN: dsn, Migrations: older})

	_, err := r.PlanDown(t.Context(), "main", 0)
	var re *databases.RefusedError
	if !errors.As(err, &re) || re.Version != 2 || re.File != "" || !strings.Contains(err.Error(), "no file in the migrations directory "+older) {
		t.Fatalf("PlanDown = %v; want a refusal of version 2 naming the directory", err)
	}
	if v, err := r.Version(t.Context(), "main"); err != nil || v != 2 {
		t.Errorf("Version = %d, %v; want 2", v, err)
	}
}
