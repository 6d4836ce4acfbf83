package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/a8e2c47e/switchback/internal/testharness"
)

// dialects lists the databases a test runs against: SQLite always,
// PostgreSQL and MySQL when their variables (testharness.PostgresEnv,
// MySQLEnv) hold a server address.
var dialects = []struct {
	dialect Dialect
	env     string
}{
	{SQLite, ""},
	{Postgres, testharness.PostgresEnv},
	{MySQL, testharness.MySQLEnv},
}

// forEachDialect runs fn as a parallel subtest per database.
func forEachDialect(t *testing.T, fn func(t *testing.T, base Target)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(string(d.dialect), func(t *testing.T) {
			t.Parallel()
			fn(t, baseTarget(t, d.dialect))
		})
	}
}

// baseTarget returns the server a test creates its scratch databases on,
// or skips the test.
func baseTarget(t testing.TB, d Dialect) Target {
	t.Helper()
	raw := "sqlite:unused.db"
	for _, x := range dialects {
		if x.dialect == d && x.env != "" {
			raw = testharness.DatabaseURL(t, x.env)
		}
	}
	tg, err := ParseTarget(raw)
	if err != nil {
		t.Fatalf("parse test database URL: %v", err)
	}
	return tg
}

// scratch creates an empty database dropped when the test ends.
func scratch(t testing.TB, base Target) Target {
	t.Helper()
	s, drop, err := Scratch(context.Background(), base)
	if err != nil {
		t.Fatalf("scratch database: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop scratch database: %v", err)
		}
	})
	return s
}

// openMigrator opens a Migrator closed when the test ends.
func openMigrator(t testing.TB, tg Target, fsys fs.FS, opts ...Option) *Migrator {
	t.Helper()
	m, err := Open(context.Background(), tg.raw, fsys, opts...)
	if err != nil {
		t.Fatalf("open migrator: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// files builds an in-memory migrations directory.
func files(kv ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		fsys[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return fsys
}

// exec runs statements on db, failing the test on error.
func exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("exec %q: %v", s, err)
		}
	}
}

// series returns SQL that inserts rows 1..n into table, computing each
// column from x, set-based on every dialect.
func series(d Dialect, n int, table, cols, exprs string) string {
	if d == Postgres {
		return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM generate_series(1, %d) AS g(x)", table, cols, exprs, n)
	}
	// A cross join of digit tables: MariaDB caps recursive CTEs at 1000
	// iterations by default.
	digits := "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
	from, sum := "", "1"
	for i, p := 0, 1; p < n; i, p = i+1, p*10 {
		if i > 0 {
			from += " CROSS JOIN "
		}
		from += fmt.Sprintf("%s AS d%d", digits, i)
		sum += fmt.Sprintf(" + %d * d%d.d", p, i)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (SELECT %s AS x FROM %s) AS g WHERE x <= %d",
		table, cols, exprs, sum, from, n)
}
