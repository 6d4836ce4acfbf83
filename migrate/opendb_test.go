package migrate

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenDB(t *testing.T) {
	fsys := files("00001_users.sql", usersV1, "00002_orders.sql", ordersV2)
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		db, err := sql.Open(tg.Dialect.driver(), tg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		m, err := OpenDB(t.Context(), db, tg.Dialect, fsys)
		if err != nil {
			t.Fatalf("OpenDB: %v", err)
		}
		rep, err := m.Up(t.Context(), 0)
		if err != nil || rep.Version != 2 {
			t.Fatalf("Up = %+v, %v; want version 2", rep, err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		// The caller's handle stays open, and a Migrator from a URL sees
		// the same database.
		if err := db.PingContext(t.Context()); err != nil {
			t.Errorf("db after Close: %v; want it still open", err)
		}
		st, err := openMigrator(t, tg, fsys).Status(t.Context())
		if err != nil || st[1].State != "applied" {
			t.Errorf("status from a URL = %+v, %v; want 2 applied", st, err)
		}
	})
}

func TestOpenDBRefuses(t *testing.T) {
	fsys := files("00001_users.sql", usersV1)
	file, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	memory, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { memory.Close() })
	tests := []struct {
		name    string
		db      *sql.DB
		dialect Dialect
		opts    []Option
		want    string
	}{
		{"nil db", nil, SQLite, nil, "db must not be nil"},
		{"unknown dialect", file, "oracle", nil, `dialect "oracle": accepted: sqlite, postgres, mysql`},
		{"in-memory SQLite", memory, SQLite, nil, "in memory"},
		{"lint option", file, SQLite, []Option{WithUnusedFor(48 * 3600e9)}, "WithUnusedFor: applies to Lint only"},
		{"bad lock timeout", file, SQLite, []Option{WithLockTimeout(0)}, "lock timeout 0s: accepted: 1s or more"},
		{"nil option", file, SQLite, []Option{nil}, "option must not be nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenDB(t.Context(), tt.db, tt.dialect, fsys, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenDB = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := Lint(fsys, WithLockTimeout(60e9)); err == nil || !strings.Contains(err.Error(), "WithLockTimeout: applies to Open, OpenDB and Verify only") {
		t.Errorf("Lint with WithLockTimeout = %v, want it refused", err)
	}
}
