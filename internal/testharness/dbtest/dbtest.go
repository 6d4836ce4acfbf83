// Package dbtest gives tests real databases for the release and drill
// work: an empty scratch database of a dialect, and the gateway's
// databases registry on a SQLite file a contract migration has reached.
package dbtest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/migrate"
)

// Scratch returns an empty database of the dialect and the test's own
// handle on it: a SQLite file, or a scratch database on the PostgreSQL
// server of SWITCHBACK_TEST_POSTGRES (the test is skipped when it is
// unset), dropped when the test ends.
func Scratch(t testing.TB, dialect migrate.Dialect) (migrate.Target, *sql.DB) {
	t.Helper()
	var tg migrate.Target
	var err error
	switch dialect {
	case migrate.SQLite:
		tg, err = migrate.ParseTarget("sqlite:" + filepath.Join(t.TempDir(), "main.db"))
	case migrate.Postgres:
		var base migrate.Target
		if base, err = migrate.ParseTarget(testharness.DatabaseURL(t, testharness.PostgresEnv)); err == nil {
			var drop func() error
			tg, drop, err = migrate.Scratch(context.Background(), base)
			if err == nil {
				t.Cleanup(func() { _ = drop() })
			}
		}
	default:
		t.Fatalf("dbtest: no scratch database for dialect %q", dialect)
	}
	if err != nil {
		t.Fatal(err)
	}
	driver := map[migrate.Dialect]string{migrate.SQLite: "sqlite", migrate.Postgres: "pgx"}[dialect]
	db, err := sql.Open(driver, tg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return tg, db
}

// Contracted is the gateway's databases with database main on a real
// SQLite file at version 2, a contract that dropped orders.total: no
// rollback may roll it down, and code that reads total no longer works.
func Contracted(t testing.TB) *databases.Registry {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"00001_orders.sql": "-- +goose Up\nCREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER);\n-- +goose Down\nDROP TABLE orders;\n",
		"00002_drop_total.sql": "-- +switchback contract\n-- +goose Up\nALTER TABLE orders DROP COLUMN total;\n" +
			"-- +goose Down\nALTER TABLE orders ADD COLUMN total INTEGER;\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "main.db")
	m, err := migrate.Open(context.Background(), dsn, os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	m.Close()
	reg, err := databases.New([]databases.Config{{Name: "main", DSN: dsn, Migrations: dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}
