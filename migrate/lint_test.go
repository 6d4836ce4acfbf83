package migrate

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var lintNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const lintBase = `-- +goose Up
CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(255),
    score INTEGER,
    legacy TEXT
);
-- +goose Down
DROP TABLE users;
`

func migration(phase, up string) string {
	head := ""
	if phase != "" {
		head = "-- +switchback " + phase + "\n"
	}
	return head + "-- +goose Up\n" + up + "\n-- +goose Down\nSELECT 1;\n"
}

// destructiveCases are Up sections after lintBase and what Lint says of
// them; they also seed FuzzTokenize and FuzzDDL.
var destructiveCases = []struct {
	name string
	up   string
	// want is a fragment of the finding's message; empty means no
	// finding.
	want string
}{
	{"drop table", "DROP TABLE users;", "DROP TABLE users"},
	{"drop table if exists", "DROP TABLE IF EXISTS public.users CASCADE;", "DROP TABLE users"},
	{"drop column", "ALTER TABLE users DROP COLUMN legacy;", "DROP COLUMN users.legacy"},
	{"mysql drop without COLUMN", "ALTER TABLE users DROP legacy;", "DROP COLUMN users.legacy"},
	{"rename table", "ALTER TABLE users RENAME TO people;", "RENAME of table users"},
	{"mysql rename table", "RENAME TABLE users TO people;", "RENAME TABLE users TO people"},
	{"rename column", "ALTER TABLE users RENAME COLUMN legacy TO old;", "RENAME of column users.legacy"},
	{"mysql change renames", "ALTER TABLE users CHANGE legacy old TEXT;", "RENAME of column users.legacy"},
	{"narrow varchar", "ALTER TABLE users ALTER COLUMN name TYPE VARCHAR(50);", "narrows"},
	{"narrow bigint", "ALTER TABLE users ALTER COLUMN id SET DATA TYPE INTEGER;", "narrows"},
	{"mysql modify narrows", "ALTER TABLE users MODIFY email VARCHAR(20);", "narrows"},
	{"text to int narrows", "ALTER TABLE users ALTER COLUMN legacy TYPE INTEGER USING legacy::integer;", "narrows"},
	{"unknown column type change", "ALTER TABLE users ALTER COLUMN nope TYPE TEXT;", "cannot be shown to be widening"},
	{"add not null without default", "ALTER TABLE users ADD COLUMN plan TEXT NOT NULL;", "NOT NULL without a DEFAULT"},
	{"set not null", "ALTER TABLE users ALTER COLUMN email SET NOT NULL;", "SET NOT NULL on users.email"},
	{"mysql modify not null", "ALTER TABLE users MODIFY email VARCHAR(255) NOT NULL;", "NOT NULL without a DEFAULT"},
	{"drop constraint is fine", "ALTER TABLE users DROP CONSTRAINT users_name_key;", ""},
	{"drop index is fine", "DROP INDEX users_email_idx;", ""},
	{"add nullable column is fine", "ALTER TABLE users ADD COLUMN plan TEXT;", ""},
	{"add not null with default is fine", "ALTER TABLE users ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';", ""},
	{"widen varchar is fine", "ALTER TABLE users ALTER COLUMN name TYPE VARCHAR(200);", ""},
	{"varchar to text is fine", "ALTER TABLE users ALTER COLUMN name TYPE TEXT;", ""},
	{"int to bigint is fine", "ALTER TABLE users MODIFY score BIGINT;", ""},
	{"set not null after default is fine", "ALTER TABLE users ALTER COLUMN email SET DEFAULT '';\nALTER TABLE users ALTER COLUMN email SET NOT NULL;", ""},
	{"drop in a string is fine", "INSERT INTO users (id, name) VALUES (1, 'DROP TABLE users');", ""},
	{"create table is fine", "CREATE TABLE t (id INTEGER NOT NULL);", ""},
}

func TestLintDestructive(t *testing.T) {
	for _, tt := range destructiveCases {
		t.Run(tt.name, func(t *testing.T) {
			fsys := files("00001_base.sql", lintBase, "00002_change.sql", migration("expand", tt.up))
			rep, err := Lint(fsys, WithNow(func() time.Time { return lintNow }))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Lint = %v, want no findings: %v", err, rep.Findings)
				}
				return
			}
			if !errors.Is(err, ErrLint) {
				t.Fatalf("Lint error = %v, want ErrLint", err)
			}
			if got := rep.Findings; len(got) != 1 || got[0].Rule != "destructive" || got[0].File != "00002_change.sql" || !strings.Contains(got[0].Message, tt.want) {
				t.Fatalf("findings = %v, want one destructive finding in 00002_change.sql mentioning %q", got, tt.want)
			}
			if got, want := rep.Findings[0].Line, 3; got != want {
				t.Errorf("finding on line %d, want %d", got, want)
			}
			// The same statement is allowed in a contract migration (its
			// usage is checked separately).
			fsys["00002_change.sql"].Data = []byte(migration("contract", tt.up))
			rep, _ = Lint(fsys, WithNow(func() time.Time { return lintNow }))
			if slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.Rule == "destructive" }) {
				t.Errorf("contract migration still flagged destructive: %v", rep.Findings)
			}
		})
	}
}

// tsvLog writes one query per day from first to last, with the query
// mentioning legacy up to lastUse.
func tsvLog(first, last, lastUse time.Time) string {
	var b strings.Builder
	for d := first; !d.After(last); d = d.Add(24 * time.Hour) {
		q := "SELECT id, name FROM users WHERE id = $1"
		if !d.After(lastUse) {
			q = "SELECT id, legacy FROM users WHERE id = $1"
		}
		fmt.Fprintf(&b, "%s\t%s\n", d.Format(time.RFC3339), q)
	}
	return b.String()
}

func TestLintUsage(t *testing.T) {
	day := 24 * time.Hour
	contract := migration("contract", "ALTER TABLE users DROP COLUMN legacy;")
	tests := []struct {
		name     string
		log      string // empty: no --usage
		wantRule string // empty: passes
		want     string
	}{
		{"unused for 40 days", tsvLog(lintNow.Add(-60*day), lintNow.Add(-time.Hour), lintNow.Add(-40*day)), "", ""},
		{"used 10 days ago", tsvLog(lintNow.Add(-60*day), lintNow.Add(-time.Hour), lintNow.Add(-10*day)), "used-recently", "users.legacy, last used 2026-02-19"},
		{"used 29 days ago", tsvLog(lintNow.Add(-60*day), lintNow.Add(-time.Hour), lintNow.Add(-29*day)), "used-recently", "users.legacy"},
		{"log covers 20 days", tsvLog(lintNow.Add(-20*day), lintNow.Add(-time.Hour), lintNow.Add(-40*day)), "usage-coverage", "must cover 2026-01-30"},
		{"log ends 5 days ago", tsvLog(lintNow.Add(-60*day), lintNow.Add(-5*day), lintNow.Add(-40*day)), "usage-coverage", "users.legacy"},
		{"no usage log", "", "unproven-unused", "pass --usage"},
		{"ddl is not use", tsvLog(lintNow.Add(-60*day), lintNow.Add(-time.Hour), lintNow.Add(-40*day)) +
			lintNow.Add(-2*time.Hour).Format(time.RFC3339) + "\tALTER TABLE users DROP COLUMN legacy\n", "", ""},
		{"other table's column is not use", tsvLog(lintNow.Add(-60*day), lintNow.Add(-time.Hour), lintNow.Add(-40*day)) +
			lintNow.Add(-2*time.Hour).Format(time.RFC3339) + "\tSELECT legacy FROM accounts\n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := files("00001_base.sql", lintBase, "00002_drop.sql", contract)
			opts := []Option{WithNow(func() time.Time { return lintNow })}
			if tt.log != "" {
				opts = append(opts, WithUsage("usage.log", strings.NewReader(tt.log)))
			}
			rep, err := Lint(fsys, opts...)
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Lint = %v: %v", err, rep.Findings)
				}
				return
			}
			if !errors.Is(err, ErrLint) {
				t.Fatalf("Lint error = %v, want ErrLint", err)
			}
			if got := rep.Findings; len(got) != 1 || got[0].Rule != tt.wantRule || !strings.Contains(got[0].Message, tt.want) {
				t.Fatalf("findings = %v, want one %s finding mentioning %q", got, tt.wantRule, tt.want)
			}
		})
	}
}

// usageFormatCases are one log of each format. Each covers
// 2026-01-01..2026-03-01; wantRule says whether users.legacy was used in
// the last 30 days. They also seed the usage-log fuzz targets.
var usageFormatCases = []struct {
	name     string
	log      string
	wantRule string
}{
	{
		name: "postgres csvlog, unused",
		log: `2026-01-01 00:00:01.000 UTC,"app","prod",101,"10.0.0.1:5000",65a1,1,"SELECT",2026-01-01 00:00:00 UTC,3/1,0,LOG,00000,"statement: SELECT legacy FROM users",,,,,,,,,"psql","client backend",,0
2026-02-28 23:00:00.000 UTC,"app","prod",101,"10.0.0.1:5000",65a1,2,"SELECT",2026-01-01 00:00:00 UTC,3/2,0,LOG,00000,"execute <unnamed>: SELECT id,
    name FROM users",,,,,,,,,"app","client backend",,0
2026-03-01 11:00:00.000 UTC,,,90,,65a2,1,,2026-03-01 11:00:00 UTC,,0,LOG,00000,"checkpoint complete",,,,,,,,,"","checkpointer",,0
`,
	},
	{
		name: "postgres csvlog, used",
		log: `2026-01-01 00:00:01.000 UTC,"app","prod",101,"10.0.0.1:5000",65a1,1,"SELECT",2026-01-01 00:00:00 UTC,3/1,0,LOG,00000,"statement: SELECT 1",,,,,,,,,"psql","client backend",,0
2026-02-20 10:00:00.000 UTC,"app","prod",101,"10.0.0.1:5000",65a1,2,"SELECT",2026-01-01 00:00:00 UTC,3/2,0,LOG,00000,"duration: 0.051 ms  statement: SELECT ""legacy""
    FROM users",,,,,,,,,"app","client backend",,0
2026-03-01 11:00:00.000 UTC,,,90,,65a2,1,,2026-03-01 11:00:00 UTC,,0,LOG,00000,"checkpoint complete",,,,,,,,,"","checkpointer",,0
`,
		wantRule: "used-recently",
	},
	{
		name: "mysql 8 general log, used",
		log: "/usr/sbin/mysqld, Version: 8.0.36 (MySQL Community Server - GPL). started with:\n" +
			"Tcp port: 3306  Unix socket: /var/run/mysqld/mysqld.sock\n" +
			"Time                 Id Command    Argument\n" +
			"2026-01-01T00:00:00.000000Z\t   12 Connect\troot@localhost on prod using TCP/IP\n" +
			"2026-02-25T08:00:00.000000Z\t   12 Query\tSELECT id,\n    legacy FROM users\n" +
			"2026-03-01T11:00:00.000000Z\t   12 Quit\t\n",
		wantRule: "used-recently",
	},
	{
		name: "mariadb general log, unused",
		log: "/usr/sbin/mariadbd, Version: 10.11.6-MariaDB-0+deb12u1-log (Debian 12). started with:\n" +
			"Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\n" +
			"Time\t\t    Id Command\tArgument\n" +
			"260101  0:00:00\t    12 Query\tSELECT legacy FROM users\n" +
			"\t\t    12 Query\tSELECT 1\n" +
			"260301 11:00:00\t    13 Connect\troot@localhost on prod\n" +
			"\t\t    13 Query\tSELECT id FROM users\n",
	},
	{
		name: "tab separated, used",
		log: "2026-01-01T00:00:00Z\tSELECT 1\n" +
			"2026-02-27T00:00:00Z\tUPDATE users SET legacy = NULL\n" +
			"2026-03-01T11:00:00Z\tSELECT 1\n",
		wantRule: "used-recently",
	},
}

func TestLintUsageFormats(t *testing.T) {
	for _, tt := range usageFormatCases {
		t.Run(tt.name, func(t *testing.T) {
			fsys := files("00001_base.sql", lintBase, "00002_drop.sql", migration("contract", "ALTER TABLE users DROP COLUMN legacy;"))
			rep, err := Lint(fsys, WithNow(func() time.Time { return lintNow }), WithUsage("log", strings.NewReader(tt.log)))
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Lint = %v: %v", err, rep.Findings)
				}
				return
			}
			if !errors.Is(err, ErrLint) || len(rep.Findings) != 1 || rep.Findings[0].Rule != tt.wantRule {
				t.Fatalf("Lint = %v, findings %v; want one %s finding", err, rep.Findings, tt.wantRule)
			}
		})
	}
}

func TestLintBadUsageLog(t *testing.T) {
	fsys := files("00001_base.sql", lintBase, "00002_drop.sql", migration("contract", "ALTER TABLE users DROP COLUMN legacy;"))
	_, err := Lint(fsys, WithUsage("queries.txt", strings.NewReader("yesterday\tSELECT 1\n")))
	if err == nil || errors.Is(err, ErrLint) {
		t.Fatalf("Lint = %v, want a format error", err)
	}
	for _, want := range []string{"--usage queries.txt", "yesterday", "accepted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLintExampleMigrations(t *testing.T) {
	f, err := os.Open("../examples/migrations/usage.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	// The sample log ends on 2026-02-20; the old column was last read on
	// 2026-01-10.
	now := time.Date(2026, 2, 20, 23, 0, 0, 0, time.UTC)
	rep, err := Lint(os.DirFS("../examples/migrations"), WithNow(func() time.Time { return now }), WithUsage("usage.log", f))
	if err != nil {
		t.Fatalf("Lint = %v: %v", err, rep.Findings)
	}
	if got, want := rep.Migrations, 4; got != want {
		t.Errorf("linted %d migrations, want %d", got, want)
	}
}

func TestLintAnnotations(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string
	}{
		{"unknown annotation", "-- +switchback shrink\n-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n", `unknown annotation "+switchback shrink"; accepted: expand, contract, snapshot TABLE...`},
		{"both phases", "-- +switchback expand\n-- +switchback contract\n-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n", "either expand or contract"},
		{"bad snapshot table", "-- +switchback snapshot orders;drop\n-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1;\n", `snapshot table "orders;drop"`},
		{"missing up", "SELECT 1;\n", "SQL before '-- +goose Up'"},
		{"unterminated", "-- +goose Up\nSELECT 1\n-- +goose Down\nSELECT 1;\n", "missing semicolon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Lint(files("00001_x.sql", tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Lint = %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "00001_x.sql") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestUsageLogLongLine: a statement longer than the read buffer is still
// read whole.
func TestUsageLogLongLine(t *testing.T) {
	long := "SELECT legacy FROM users WHERE id IN (" + strings.Repeat("1,", 1<<20) + "1)"
	for _, log := range []string{
		"2026-01-01T00:00:00Z\t" + long + "\n",
		"/usr/sbin/mysqld, Version: 8.0.36. started with:\n2026-01-01T00:00:00.000000Z\t   12 Query\t" + long + "\n",
	} {
		s := newUsageScan(usageObjects)
		if err := s.read("log", strings.NewReader(log)); err != nil {
			t.Fatalf("read: %v", err)
		}
		if _, ok := s.lastUse[UsageObject{Table: "users", Column: "legacy"}]; !ok || s.entries != 1 {
			t.Errorf("%d entries, uses %v; want the one long statement to use users.legacy", s.entries, s.lastUse)
		}
	}
}
