package migrate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var counted = files(
	"00001_log.sql", `-- +goose Up
CREATE TABLE applied_log (version INTEGER NOT NULL);
INSERT INTO applied_log (version) VALUES (1);
-- +goose Down
DROP TABLE applied_log;
`,
	"00002_a.sql", `-- +goose Up
CREATE TABLE a (id INTEGER PRIMARY KEY);
INSERT INTO a (id) VALUES (1);
INSERT INTO applied_log (version) VALUES (2);
-- +goose Down
DROP TABLE a;
DELETE FROM applied_log WHERE version = 2;
`,
	"00003_b.sql", `-- +switchback snapshot a
-- +goose Up
ALTER TABLE a ADD COLUMN b INTEGER;
INSERT INTO applied_log (version) VALUES (3);
-- +goose Down
ALTER TABLE a DROP COLUMN b;
DELETE FROM applied_log WHERE version = 3;
`,
)

func TestConcurrentUp(t *testing.T) {
	const runs = 20
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		var wg sync.WaitGroup
		reports := make([]*Report, runs)
		errs := make([]error, runs)
		for i := range runs {
			wg.Go(func() {
				m, err := Open(t.Context(), tg.raw, counted, WithLockTimeout(time.Minute))
				if err != nil {
					errs[i] = err
					return
				}
				defer m.Close()
				reports[i], errs[i] = m.Up(t.Context(), 0)
			})
		}
		wg.Wait()
		applied := 0
		for i := range runs {
			if errs[i] != nil {
				t.Fatalf("run %d: %v", i, errs[i])
			}
			applied += len(reports[i].Applied)
		}
		if got, want := applied, 3; got != want {
			t.Errorf("runs applied %d migrations in total, want %d", got, want)
		}
		m := openMigrator(t, tg, counted)
		got := rowsOf(t, m.DB(), "SELECT version, COUNT(*) FROM applied_log GROUP BY version ORDER BY version")
		want := []string{"1|1", "2|1", "3|1"}
		if !slices.Equal(got, want) {
			t.Errorf("applied_log (version|count) = %v, want each version once: %v", got, want)
		}
	})
}

const brokenSecond = `-- +goose Up
ALTER TABLE users ADD COLUMN nick VARCHAR(50);
ALTER TABLE no_such_table ADD COLUMN x INTEGER;
-- +goose Down
ALTER TABLE users DROP COLUMN nick;
`

const fixedSecond = `-- +goose Up
ALTER TABLE users ADD COLUMN nick VARCHAR(50);
-- +goose Down
ALTER TABLE users DROP COLUMN nick;
`

func TestFailedMigration(t *testing.T) {
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		broken := files("00001_users.sql", usersV1, "00002_nick.sql", brokenSecond)
		m := openMigrator(t, tg, broken)
		rep, err := m.Up(t.Context(), 0)
		if !errors.Is(err, ErrMigrationFailed) {
			t.Fatalf("Up = %v, want ErrMigrationFailed", err)
		}
		if got := len(rep.Applied); got != 1 || rep.Applied[0].Version != 1 {
			t.Errorf("applied %+v, want only version 1", rep.Applied)
		}
		if rep.Failed == nil || rep.Failed.Version != 2 || !strings.Contains(rep.Failed.Error, "no_such_table") {
			t.Fatalf("failed = %+v, want version 2 naming no_such_table", rep.Failed)
		}
		if got, want := rep.Version, int64(1); got != want {
			t.Errorf("database version %d, want %d", got, want)
		}

		transactional := tg.Dialect.transactionalDDL()
		if got := rep.Failed.RolledBack; got != transactional {
			t.Errorf("rolled back = %v, want %v", got, transactional)
		}
		leftNick := slices.ContainsFunc(rep.Failed.Left, func(s string) bool { return strings.Contains(s, "column users.nick") })
		if leftNick == transactional {
			t.Errorf("left behind = %v; want users.nick listed: %v", rep.Failed.Left, !transactional)
		}

		// The next run, even with the migration fixed, refuses past a
		// half-applied migration and goes on past a rolled-back one.
		fixed := files("00001_users.sql", usersV1, "00002_nick.sql", fixedSecond)
		m2 := openMigrator(t, tg, fixed)
		_, err = m2.Up(t.Context(), 0)
		if transactional {
			if err != nil {
				t.Fatalf("Up after a rolled-back failure = %v, want success", err)
			}
			return
		}
		var half *HalfAppliedError
		if !errors.As(err, &half) || !errors.Is(err, ErrHalfApplied) {
			t.Fatalf("Up after a half-applied failure = %v, want ErrHalfApplied", err)
		}
		if half.Version != 2 || !strings.Contains(err.Error(), "column users.nick") {
			t.Errorf("error %q does not name version 2 and what it left behind", err)
		}
		st, err := m2.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st[1].State, "half-applied"; got != want {
			t.Errorf("status of 2 = %q, want %q", got, want)
		}
		// A person repairs the schema, then resolves.
		exec(t, m2.DB(), "ALTER TABLE users DROP COLUMN nick")
		if err := m2.Resolve(t.Context(), 2); err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		if err := m2.Resolve(t.Context(), 2); !errors.Is(err, ErrNotFailed) {
			t.Errorf("second Resolve = %v, want ErrNotFailed", err)
		}
		if rep, err := m2.Up(t.Context(), 0); err != nil || rep.Version != 2 {
			t.Fatalf("Up after resolve = %+v, %v; want version 2", rep, err)
		}
	})
}

func TestUpDownStatus(t *testing.T) {
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		m := openMigrator(t, tg, counted)
		steps := []struct {
			name    string
			run     func() (*Report, error)
			want    []int64 // versions run
			version int64
		}{
			{"up to 2", func() (*Report, error) { return m.Up(t.Context(), 2) }, []int64{1, 2}, 2},
			{"up", func() (*Report, error) { return m.Up(t.Context(), 0) }, []int64{3}, 3},
			{"up again", func() (*Report, error) { return m.Up(t.Context(), 0) }, nil, 3},
			{"down one", func() (*Report, error) { return m.Down(t.Context(), -1) }, []int64{3}, 2},
			{"down to 0", func() (*Report, error) { return m.Down(t.Context(), 0) }, []int64{2, 1}, 0},
		}
		for _, tt := range steps {
			rep, err := tt.run()
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			var got []int64
			for _, a := range rep.Applied {
				got = append(got, a.Version)
			}
			if !slices.Equal(got, tt.want) || rep.Version != tt.version {
				t.Errorf("%s: ran %v ending at %d, want %v ending at %d", tt.name, got, rep.Version, tt.want, tt.version)
			}
		}
		st, err := m.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.State != "pending" {
				t.Errorf("status %d = %s, want pending", s.Version, s.State)
			}
		}
		if _, err := m.Up(t.Context(), 7); err == nil || !strings.Contains(err.Error(), "--to 7") {
			t.Errorf("Up(7) = %v, want an error naming --to 7", err)
		}
	})
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		dialect Dialect
		dsn     string
		err     string
	}{
		{in: "sqlite:./app.db", dialect: SQLite, dsn: "./app.db?_pragma=busy_timeout(30000)&_txlock=immediate"},
		{in: "sqlite:///tmp/x.db?_pragma=foreign_keys(1)", dialect: SQLite, dsn: "/tmp/x.db?_pragma=foreign_keys(1)&_pragma=busy_timeout(30000)&_txlock=immediate"},
		{in: "postgres://u@h:5432/db?sslmode=disable", dialect: Postgres, dsn: "postgres://u@h:5432/db?sslmode=disable"},
		{in: "mysql://root:pw@127.0.0.1:3306/test", dialect: MySQL, dsn: "root:pw@tcp(127.0.0.1:3306)/test?parseTime=true"},
		{in: "mysql://root@db/test", dialect: MySQL, dsn: "root@tcp(db:3306)/test?parseTime=true"},
		{in: "root@tcp(127.0.0.1:3306)/test", dialect: MySQL, dsn: "root@tcp(127.0.0.1:3306)/test?parseTime=true"},
		{in: "u:p@tcp(db:3307)/app?timeout=5s", dialect: MySQL, dsn: "u:p@tcp(db:3307)/app?parseTime=true&timeout=5s"},
		{in: "app.db", err: `--db "app.db": missing scheme; accepted: sqlite:PATH`},
		{in: "oracle://x/y", err: `--db "oracle://x/y": unknown scheme "oracle"; accepted:`},
		{in: "postgres://host", err: "host and database name are required"},
		{in: "sqlite:", err: "empty SQLite path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseTarget(%q) = %v, want error containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Dialect != tt.dialect || got.DSN != tt.dsn {
				t.Errorf("ParseTarget(%q) = %s %q, want %s %q", tt.in, got.Dialect, got.DSN, tt.dialect, tt.dsn)
			}
		})
	}
}

func ExampleChange() {
	fmt.Println(Change{Key: "index users_email_idx", Before: "CREATE INDEX users_email_idx ON users (email)"})
	// Output: - index users_email_idx: CREATE INDEX users_email_idx ON users (email) (removed)
}

// TestStatusAfterAKilledMigrator: a migrator killed inside a transactional
// migration leaves its journal entry but nothing half-done (the database
// rolled the transaction back), so Status reports the migration as goose
// has it, not half-applied, and the next run clears the entry and goes on.
func TestStatusAfterAKilledMigrator(t *testing.T) {
	forEachDialect(t, func(t *testing.T, base Target) {
		if !base.Dialect.transactionalDDL() {
			t.Skipf("%s runs DDL outside transactions: its interrupted migrations are half-applied", base.Dialect)
		}
		tg := scratch(t, base)
		m := openMigrator(t, tg, files("00001_users.sql", usersV1, "00002_nick.sql", fixedSecond))
		if _, err := m.Up(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		// What startJournal leaves when its process dies before the end.
		if err := m.startJournal(t.Context(), m.migration(2), "up", time.Now()); err != nil {
			t.Fatal(err)
		}
		st, err := m.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := st[1].State; got != "pending" {
			t.Errorf("status of 2 after a killed up = %q, want pending (rolled back by the database)", got)
		}
		rep, err := m.Up(t.Context(), 0)
		if err != nil || rep.Version != 2 || len(rep.Cleared) != 1 {
			t.Errorf("Up after a killed up: version %d, cleared %+v, %v; want 2, the entry cleared", rep.Version, rep.Cleared, err)
		}
	})
}
