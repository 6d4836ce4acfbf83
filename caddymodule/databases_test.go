package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
	"github.com/a8e2c47e/switchback/migrate"
)

const (
	ordersUp = `-- +goose Up
CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);
CREATE TABLE legacy (id INTEGER PRIMARY KEY);
-- +goose Down
DROP TABLE legacy;
DROP TABLE orders;
`
	legacyDrop = `-- +switchback contract
-- +goose Up
DROP TABLE legacy;
-- +goose Down
CREATE TABLE legacy (id INTEGER PRIMARY KEY);
`
	auditUp = `-- +goose Up
CREATE TABLE audit (id INTEGER PRIMARY KEY);
-- +goose Down
DROP TABLE audit;
`
)

// migrationsDir writes the test migrations: 1 expand, 2 contract, 3 expand.
func migrationsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"00001_orders.sql": ordersUp, "00002_drop_legacy.sql": legacyDrop, "00003_audit.sql": auditUp} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDatabaseCaddyfile: `database NAME DSN` keeps its old form, gains an
// optional block with the migrations directory, and refuses what it does
// not know with the file and line.
func TestDatabaseCaddyfile(t *testing.T) {
	src := `{
	switchback {
		database main {env.MAIN_DB} {
			migrations ./db/migrations
		}
		database reports {file./run/secrets/reports_db}
	}
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"databases":{"main":"{env.MAIN_DB}","reports":"{file./run/secrets/reports_db}"}`,
		`"database_migrations":{"main":"./db/migrations"}`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}

	global := func(lines string) string { return "{\n\tswitchback {\n" + lines + "\n\t}\n}\n" }
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown setting", global("database main sqlite:a.db {\nmigrate ./m\n}"), []string{`database main: unknown setting "migrate"`, "accepted: migrations DIR", "Caddyfile:4"}},
		{"migrations twice", global("database main sqlite:a.db {\nmigrations ./m\nmigrations ./n\n}"), []string{"database main: migrations given twice", "Caddyfile:5"}},
		{"migrations without a dir", global("database main sqlite:a.db {\nmigrations\n}"), []string{"migrations needs a value", "Caddyfile:4"}},
		{"migrations with two dirs", global("database main sqlite:a.db {\nmigrations ./m ./n\n}"), []string{"migrations takes one value", "Caddyfile:4"}},
		{"three values", global("database main sqlite:a.db ./m"), []string{"want 'database NAME DSN' or 'database NAME DSN { migrations DIR }'", "Caddyfile:3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantAdaptError(t, tt.src, tt.want)
		})
	}
}

// TestDatabaseProvisionErrors: a database line whose placeholder reads
// empty, or a migrations directory that does not exist, fails the start
// with the name and the value.
func TestDatabaseProvisionErrors(t *testing.T) {
	t.Setenv("SB_TEST_EMPTY_DB", "")
	tests := []struct {
		name   string
		global string
		want   []string
	}{
		{"empty placeholder", "database main {env.SB_TEST_EMPTY_DB}", []string{"database main", `"{env.SB_TEST_EMPTY_DB}"`, "the DSN is empty"}},
		{"missing migrations", fmt.Sprintf("database main sqlite:%s {\n\t\t\tmigrations %s\n\t\t}", filepath.Join(t.TempDir(), "a.db"), filepath.Join(t.TempDir(), "none")),
			[]string{"database main migrations", "none", "directory of NUMBER_name.sql"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			global := fmt.Sprintf("switchback {\n\t\tstore embedded %s 127.0.0.1:%d\n\t\tadmin off\n\t\t%s\n\t}", t.TempDir(), testharness.FreePort(t), tt.global)
			err := caddytest.Load(t, caddytest.Caddyfile(global, fmt.Sprintf("http://127.0.0.1:%d", testharness.FreePort(t)), "\tswitchback checkout {\n\t\tpool blue 127.0.0.1:1\n\t\tpool green 127.0.0.1:2\n\t}"))
			if err == nil {
				t.Fatal("the gateway started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestResolveDatabase: `switchback migrate --database NAME` reads the
// database line from the Caddyfile, its {env.X} and {file.PATH}
// placeholders replaced as the gateway replaces them, and runs on it.
func TestResolveDatabase(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "app.db")
	secret := filepath.Join(dir, "reports_db")
	if err := os.WriteFile(secret, []byte("postgres://reports:hunter2@127.0.0.1:5432/reports\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	migrations := migrationsDir(t)
	t.Setenv("SB_TEST_MAIN_DB", "sqlite:"+dbFile)
	t.Setenv("SB_TEST_MIGRATIONS", migrations)
	caddyfile := filepath.Join(dir, "Caddyfile")
	src := fmt.Sprintf(`{
	admin off
	switchback {
		admin off
		database main {env.SB_TEST_MAIN_DB} {
			migrations {env.SB_TEST_MIGRATIONS}
		}
		database reports {file.%s}
	}
}
`, secret)
	if err := os.WriteFile(caddyfile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}

	dsn, gotDir, err := ResolveDatabase(caddyfile, "main")
	if err != nil || dsn != "sqlite:"+dbFile || gotDir != migrations {
		t.Fatalf("ResolveDatabase main = %q, %q, %v; want the environment's values", dsn, gotDir, err)
	}
	if dsn, gotDir, err := ResolveDatabase(caddyfile, "reports"); err != nil || dsn != "postgres://reports:hunter2@127.0.0.1:5432/reports" || gotDir != "" {
		t.Errorf("ResolveDatabase reports = %q, %q, %v; want the file's address, no directory", dsn, gotDir, err)
	}
	var fe *gateway.FieldError
	_, _, err = ResolveDatabase(caddyfile, "orders")
	if !errors.As(err, &fe) || fe.Field != "--database" || fe.Value != `"orders"` || !strings.Contains(fe.Want, "accepted: main, reports") || !strings.Contains(fe.Want, caddyfile) {
		t.Errorf("unknown name: %v; want a FieldError on --database listing main, reports", err)
	}
	_, _, err = ResolveDatabase(filepath.Join(dir, "nope"), "main")
	if !errors.As(err, &fe) || fe.Field != "--config" {
		t.Errorf("missing Caddyfile: %v; want a FieldError on --config", err)
	}

	// The command line, as `switchback migrate` runs it.
	var out, errOut bytes.Buffer
	code := migrate.MainWith(t.Context(), []string{"up", "--database", "main", "--config", caddyfile, "--to", "2"}, &out, &errOut, ResolveDatabase)
	if code != cmdline.ExitOK {
		t.Fatalf("migrate up --database main: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	code = migrate.MainWith(t.Context(), []string{"status", "--json", "--database", "main", "--config", caddyfile}, &out, &errOut, ResolveDatabase)
	if code != cmdline.ExitOK {
		t.Fatalf("migrate status --database main: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	var status struct {
		Items []migrate.Status `json:"migrations"`
	}
	if err := json.Unmarshal(out.Bytes(), &status); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	if len(status.Items) != 3 || status.Items[1].State != "applied" || status.Items[2].State != "pending" {
		t.Errorf("status after up --to 2 = %+v; want 1 and 2 applied, 3 pending", status.Items)
	}
	errOut.Reset()
	code = migrate.MainWith(t.Context(), []string{"status", "--database", "orders", "--config", caddyfile}, &out, &errOut, ResolveDatabase)
	if code != cmdline.ExitUsage || !strings.Contains(errOut.String(), "accepted: main, reports") {
		t.Errorf("migrate --database orders: exit %d, %q; want a usage error listing the names", code, errOut.String())
	}
}

// TestDatabasesEndpoint: GET /api/v1/databases on a real gateway lists
// each configured database's version, pending count and last contract
// migration, and an unreachable one with its error; no DSN, password or
// database file appears in the answer.
func TestDatabasesEndpoint(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "app.db")
	migrations := migrationsDir(t)
	m, err := migrate.Open(t.Context(), "sqlite:"+dbFile, os.DirFS(migrations))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	m.Close()
	t.Setenv("SB_TEST_MAIN_DB", "sqlite:"+dbFile)
	const password = "s3cret-pw"

	e := etcdtest.Start(t)
	aport := testharness.FreePort(t)
	caddytest.Start(t,
		fmt.Sprintf(`switchback {
		store etcd %s
		admin 127.0.0.1:%d
		state_dir %s
		database main {env.SB_TEST_MAIN_DB} {
			migrations %s
		}
		database orders postgres://app:%s@127.0.0.1:1/orders?connect_timeout=1
	}`, e.Endpoint(), aport, t.TempDir(), migrations, password),
		"\tswitchback checkout {\n\t\tpool blue 127.0.0.1:1\n\t\tpool green 127.0.0.1:2\n\t}")

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/databases", aport))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/databases: %s\n%s", resp.Status, body)
	}
	t.Logf("GET /api/v1/databases: %s", body)
	for _, secret := range []string{password, "postgres://", "sqlite:", dbFile, "127.0.0.1:1/"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("the answer shows %q:\n%s", secret, body)
		}
	}
	var list admin.DatabaseList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	if len(list.Databases) != 2 {
		t.Fatalf("databases = %s; want main and orders", body)
	}
	main, orders := list.Databases[0], list.Databases[1]
	if main.Name != "main" || main.Dialect != migrate.SQLite || main.Version != 2 || main.Pending != 1 || main.Migrations != migrations || main.Error != "" {
		t.Errorf("main = %+v; want sqlite at version 2, 1 pending, migrations %s", main, migrations)
	}
	if lc := main.LastContract; lc == nil || lc.Version != 2 || lc.File != "00002_drop_legacy.sql" || lc.AppliedAt.IsZero() {
		t.Errorf("main's last contract = %+v; want 2 (00002_drop_legacy.sql) with its time", lc)
	}
	if orders.Name != "orders" || orders.Dialect != migrate.Postgres || !strings.Contains(orders.Error, "database orders: cannot connect: ") {
		t.Errorf("orders = %+v; want postgres with a connection error", orders)
	}
	if got := runningApp(t).DatabaseRegistry().Names(); len(got) != 2 {
		t.Errorf("DatabaseRegistry().Names() = %v, want main and orders", got)
	}
}
