package control

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/internal/testharness/dbtest"
	"github.com/a8e2c47e/switchback/migrate"
)

// migrationsDir holds orders (1), an expand adding orders.note (2) and a
// contract dropping orders.total (3), with a snapshot of orders.
var migrationsDir = os.DirFS("testdata/migrations")

// sqlSchemas is the gateway's own Schemas (package databases) over a real
// database "main", with the test's own handle on it to migrate up, dump
// the schema and read rows.
type sqlSchemas struct {
	*databases.Registry
	dbs map[string]schemaDB
}

type schemaDB struct {
	dialect migrate.Dialect
	db      *sql.DB
}

// newSchemas opens database "main" of the dialect (SQLite in a temporary
// file; PostgreSQL in a scratch database when SWITCHBACK_TEST_POSTGRES is
// set, else the test is skipped) and applies migration 1.
func newSchemas(t *testing.T, dialect migrate.Dialect) *sqlSchemas {
	t.Helper()
	tg, db := dbtest.Scratch(t, dialect)
	reg, err := databases.New([]databases.Config{{Name: "main", DSN: tg.URL, Migrations: "testdata/migrations"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	s := &sqlSchemas{Registry: reg, dbs: map[string]schemaDB{"main": {dialect: dialect, db: db}}}
	s.up(t, 1)
	if _, err := db.ExecContext(t.Context(), "INSERT INTO orders (id, total) VALUES (1, 100), (2, 250)"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *sqlSchemas) migrator(ctx context.Context, db string) (*migrate.Migrator, error) {
	d, ok := s.dbs[db]
	if !ok {
		return nil, os.ErrNotExist
	}
	return migrate.OpenDB(ctx, d.db, d.dialect, migrationsDir)
}

// up migrates main up to version to.
func (s *sqlSchemas) up(t *testing.T, to int64) {
	t.Helper()
	m, err := s.migrator(t.Context(), "main")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(t.Context(), to); err != nil {
		t.Fatal(err)
	}
}

// dump is main's schema, as migrate's schema dump writes it.
func (s *sqlSchemas) dump(t *testing.T) string {
	t.Helper()
	d := s.dbs["main"]
	sc, err := migrate.DumpSchema(t.Context(), d.dialect, d.db)
	if err != nil {
		t.Fatal(err)
	}
	return sc.String()
}

// totals lists main's orders as "id:total", by id.
func (s *sqlSchemas) totals(t *testing.T) string {
	t.Helper()
	rows, err := s.dbs["main"].db.QueryContext(t.Context(), "SELECT id, total FROM orders ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, total int
		if err := rows.Scan(&id, &total); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%d", id, total))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

var _ Schemas = (*sqlSchemas)(nil)
