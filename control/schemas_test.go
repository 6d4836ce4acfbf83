package control

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/migrate"
)

// migrationsDir holds orders (1), an expand adding orders.note (2) and a
// contract dropping orders.total (3), with a snapshot of orders.
var migrationsDir = os.DirFS("testdata/migrations")

// sqlSchemas is Schemas over the migrate package and real databases, as
// package databases implements it for the gateway.
type sqlSchemas struct {
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
	var tg migrate.Target
	var err error
	switch dialect {
	case migrate.SQLite:
		tg, err = migrate.ParseTarget("sqlite:" + filepath.Join(t.TempDir(), "main.db"))
	case migrate.Postgres:
		var base migrate.Target
		if base, err = migrate.ParseTarget(testharness.DatabaseURL(t, testharness.PostgresEnv)); err == nil {
			var drop func() error
			tg, drop, err = migrate.Scratch(t.Context(), base)
			if err == nil {
				t.Cleanup(func() { _ = drop() })
			}
		}
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
	s := &sqlSchemas{dbs: map[string]schemaDB{"main": {dialect: dialect, db: db}}}
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

func (s *sqlSchemas) Names() []string { return []string{"main"} }

func (s *sqlSchemas) Version(ctx context.Context, db string) (int64, error) {
	applied, err := s.Applied(ctx, db)
	if err != nil || len(applied) == 0 {
		return 0, err
	}
	return applied[len(applied)-1].Version, nil
}

func (s *sqlSchemas) Applied(ctx context.Context, db string) ([]migrate.Status, error) {
	m, err := s.migrator(ctx, db)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	st, err := m.Status(ctx)
	return slices.DeleteFunc(st, func(s migrate.Status) bool { return s.State != "applied" }), err
}

func (s *sqlSchemas) PlanDown(ctx context.Context, db string, to int64) ([]migrate.Status, error) {
	applied, err := s.Applied(ctx, db)
	if err != nil {
		return nil, err
	}
	var undo []migrate.Status
	for _, st := range slices.Backward(applied) {
		if st.Version > to {
			undo = append(undo, st)
		}
	}
	if err := RefuseDown(db, undo); err != nil {
		return nil, err
	}
	return undo, nil
}

func (s *sqlSchemas) Down(ctx context.Context, db string, to int64, restoreData bool) ([]migrate.Status, error) {
	undo, err := s.PlanDown(ctx, db, to)
	if err != nil {
		return nil, err
	}
	m, err := s.migrator(ctx, db)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if _, err := m.Down(ctx, to); err != nil {
		return nil, err
	}
	if restoreData {
		for _, st := range undo {
			if len(st.Snapshot) > 0 {
				if _, err := m.RestoreSnapshot(ctx, st.Version); err != nil {
					return nil, err
				}
			}
		}
	}
	return undo, nil
}

var _ Schemas = (*sqlSchemas)(nil)
