package runbook

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/migrate"
)

// caddyfile writes a gateway Caddyfile with database name at db, and
// returns its path and a resolver of it. The resolver stands for
// caddymodule.ResolveDatabase, which the binary passes and this package's
// tests cannot import (Caddy stays in the shell): it answers for that one
// file and name, and says so otherwise.
func caddyfile(t *testing.T, name, db, dir string) (string, migrate.DatabaseResolver) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, fmt.Appendf(nil, "{\n\tswitchback {\n\t\tdatabase %s %s {\n\t\t\tmigrations %s\n\t\t}\n\t}\n}\n", name, db, dir), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func(config, n string) (string, string, error) {
		if config != path || n != name {
			return "", "", &gateway.FieldError{Field: "--database", Value: n, Want: "no database of that name in " + config + "; accepted: " + name}
		}
		return db, dir, nil
	}
}

// With --database NAME the migration section's commands read the
// database from the gateway's Caddyfile (no address printed), and they
// roll the database back, run as the binary runs them.
func TestRunbookNamedDatabase(t *testing.T) {
	s := newServer(t)
	db, dir := exampleMigrations(t)
	cf, resolve := caddyfile(t, "main", db, dir)
	var out, errOut bytes.Buffer
	if code := MainWith(t.Context(), []string{"shop", "--admin", s.url, "--database", "main", "--config", cf}, &out, &errOut, nil, resolve); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	md := out.String()
	for _, want := range []string{
		"switchback migrate down --to 2 --database main --config " + cf,
		"switchback migrate snapshot restore 3 --database main --config " + cf,
		"`switchback migrate status --database main --config " + cf + "` shows version 2",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("runbook lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, db) {
		t.Errorf("runbook prints the database's address %s; --database reads it from the Caddyfile", db)
	}

	b, err := Live(t.Context(), Source{Client: s.client, Admin: s.url, Deployment: "shop", DatabaseName: "main", Config: cf, Resolve: resolve})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Rollback("migration", b.Params()) {
		var stdout, stderr bytes.Buffer
		if code := RunWith(t.Context(), c, &stdout, &stderr, nil, resolve); code != 0 {
			t.Fatalf("%s: exit %d: %s", c.Shell(), code, stderr.String())
		}
	}
	m, err := migrate.Open(t.Context(), db, os.DirFS(dir), migrate.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, err := m.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if applied := s.State != "pending"; applied != (s.Version <= 2) {
			t.Errorf("after the runbook's commands, migration %d is %s; want 1 and 2 applied, the rest pending", s.Version, s.State)
		}
	}

	unknown, _ := Live(t.Context(), Source{Client: s.client, Deployment: "shop", DatabaseName: "nosuch", Config: cf, Resolve: resolve})
	if md := Markdown(unknown); !strings.Contains(md, "The database could not be read: ") || !strings.Contains(md, "nosuch") {
		t.Errorf("an unknown database: the migration section should say why it could not be read:\n%s", md)
	}
	var usage bytes.Buffer
	if code := MainWith(t.Context(), []string{"shop", "--database", "main", "--db", db}, &usage, &usage, nil, resolve); code != 2 || !strings.Contains(usage.String(), "give one") {
		t.Errorf("--database with --db: exit %d %q, want a usage error", code, usage.String())
	}
}

// Without a database, the migration section names the gateway's
// databases (GET /api/v1/databases) and the command that covers one.
func TestRunbookListsTheGatewaysDatabases(t *testing.T) {
	s := newServer(t)
	db, dir := exampleMigrations(t)
	reg, err := databases.New([]databases.Config{{Name: "main", DSN: db, Migrations: dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	a, err := admin.New(admin.Options{Store: s.store, Instance: "host-a", Databases: reg, Live: func(string) (uint64, bool) { return 1, true }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	var out, errOut bytes.Buffer
	if code := Main(t.Context(), []string{"shop", "--admin", srv.URL}, &out, &errOut, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "The gateway knows `main`: `switchback runbook shop --database NAME --config Caddyfile`"; !strings.Contains(out.String(), want) {
		t.Errorf("runbook lacks %q:\n%s", want, out.String())
	}
}
