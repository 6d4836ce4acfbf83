package migrate

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzz targets read what a user or a log file controls: migration
// files, the SQL in them, and query logs. `make fuzz` runs each for
// FUZZTIME; without -fuzz, `go test` runs the seeds as regular tests.

// exampleMigrations returns the example migration files, as seeds.
func exampleMigrations(f *testing.F) []string {
	f.Helper()
	names, err := fs.Glob(os.DirFS("../examples/migrations"), "*.sql")
	if err != nil {
		f.Fatal(err)
	}
	var out []string
	for _, n := range names {
		b, err := os.ReadFile("../examples/migrations/" + n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// FuzzTokenize: tokenize never panics, and on valid UTF-8 every word,
// number and punctuation token is a piece of the input, in input order:
// the tokenizer drops comments and white space but invents nothing.
func FuzzTokenize(f *testing.F) {
	for _, tt := range destructiveCases {
		f.Add(tt.up)
	}
	for _, s := range exampleMigrations(f) {
		f.Add(s)
	}
	f.Add(lintBase)
	f.Add("SELECT $tag$ body $tag$, $$x$$, 'it''s', \"q\"\"\", `b`, [c] /* c */ -- c\n")
	f.Fuzz(func(t *testing.T, s string) {
		ts := tokenize(s)
		if !utf8.ValidString(s) {
			return
		}
		rest := s
		for i, tk := range ts {
			if tk.kind == tokString || tk.kind == tokIdent {
				continue
			}
			j := strings.Index(rest, tk.text)
			if tk.text == "" || j < 0 {
				t.Fatalf("token %d %q (kind %d) is not in the input after the tokens before it; input %q", i, tk.text, tk.kind, s)
			}
			rest = rest[j+len(tk.text):]
		}
	})
}

// FuzzDDL: replaying a statement after a setup statement never panics;
// only DROP, RENAME and ALTER statements are destructive; every
// destructive change says what it is; and what a one-action statement
// removes is gone from the simulated schema afterwards.
func FuzzDDL(f *testing.F) {
	for _, tt := range destructiveCases {
		f.Add(lintBase, tt.up)
	}
	f.Add("CREATE TABLE a (x INT)", "RENAME TABLE a TO b, b TO c")
	f.Add("CREATE TABLE t (a VARCHAR(10), b NUMERIC(10,2))", "ALTER TABLE t CHANGE a a2 VARCHAR(5), MODIFY b NUMERIC(8,2) NOT NULL")
	f.Fuzz(func(t *testing.T, setup, stmt string) {
		h := newHistory()
		for _, s := range strings.Split(setup, ";") {
			h.apply(s)
		}
		ds := h.apply(stmt)
		if len(ds) == 0 {
			return
		}
		ts := tokenize(stmt)
		if !ts[0].is("drop") && !ts[0].is("rename") && !ts[0].is("alter") {
			t.Fatalf("%q is not DROP, RENAME or ALTER but is destructive: %+v", stmt, ds)
		}
		for _, d := range ds {
			if d.what == "" {
				t.Fatalf("%q: a destructive change with no description: %+v", stmt, ds)
			}
		}
		// A statement of several actions may remove a name and bring it
		// back (DROP a, ADD a); one action leaves it removed.
		if len(ds) != 1 || len(splitTop(ts)) != 1 {
			return
		}
		for _, o := range ds[0].removes {
			if o.Column == "" {
				if _, ok := h.tables[o.Table]; ok {
					t.Fatalf("%q removes table %q, which is still in the schema", stmt, o.Table)
				}
			} else if _, ok := h.column(o.Table, o.Column); ok {
				t.Fatalf("%q removes column %s, which is still in the schema", stmt, o)
			}
		}
	})
}

// FuzzNarrowing: classifying a type never panics, no type narrows to
// itself, and a column of unknown type (no earlier migration defines it,
// or defines it without a type) is never shown to be widening.
func FuzzNarrowing(f *testing.F) {
	for _, p := range [][2]string{
		{"varchar(100)", "varchar(50)"}, {"bigint", "integer"}, {"int", "numeric(12,2)"},
		{"numeric(10,2)", "numeric(8,2)"}, {"date", "timestamp"}, {"text", "integer"}, {"float4", "double precision"},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, old, new string) {
		classify(old)
		if why := narrowing(old, old, true); old != "" && why != "" {
			t.Fatalf("narrowing(%q, %q) = %q, want none", old, old, why)
		}
		if narrowing(old, new, false) == "" || narrowing("", new, true) == "" {
			t.Fatalf("narrowing(%q, %q) of a column of unknown type says widening", old, new)
		}
	})
}

// lintRules is every Finding.Rule Lint may report.
var lintRules = []string{"destructive", "unproven-unused", "used-recently", "usage-coverage", "empty-up", "empty-down"}

// FuzzLint: linting one migration file never panics; a file that does
// not parse gets an error naming it; a file that parses gets findings
// that name it, with a known rule.
func FuzzLint(f *testing.F) {
	for _, s := range exampleMigrations(f) {
		f.Add(s)
	}
	for _, tt := range destructiveCases {
		f.Add(migration("contract", tt.up))
		f.Add(migration("", tt.up))
	}
	f.Add(template(PhaseExpand))
	f.Add(template(PhaseContract))
	const file = "00001_fuzz.sql"
	f.Fuzz(func(t *testing.T, text string) {
		rep, err := Lint(files(file, text), WithNow(func() time.Time { return lintNow }))
		if err != nil && !errors.Is(err, ErrLint) {
			if !strings.Contains(err.Error(), file) {
				t.Fatalf("error %q does not name %s", err, file)
			}
			return
		}
		for _, fd := range rep.Findings {
			if fd.File != file || fd.Version != 1 || !slices.Contains(lintRules, fd.Rule) || fd.Message == "" {
				t.Fatalf("finding %+v: want file %s, version 1, a known rule and a message", fd, file)
			}
		}
		if (err != nil) != (len(rep.Findings) > 0) {
			t.Fatalf("Lint = %v with %d findings; ErrLint goes with findings", err, len(rep.Findings))
		}
	})
}

// usageObjects are what the usage fuzz targets look for.
var usageObjects = []UsageObject{{Table: "users"}, {Table: "users", Column: "legacy"}}

// checkUsageScan states what holds after reading any log: an error names
// the log; otherwise times are UTC, first ≤ last, and every use found
// lies within them with the query that used it.
func checkUsageScan(t *testing.T, s *usageScan, err error) {
	t.Helper()
	if err != nil {
		if !strings.HasPrefix(err.Error(), "--usage log") {
			t.Fatalf("error %q does not name the log", err)
		}
		return
	}
	if s.entries == 0 {
		if len(s.lastUse) > 0 {
			t.Fatalf("no entries but uses %v", s.lastUse)
		}
		return
	}
	if s.first.Location() != time.UTC || s.last.Location() != time.UTC || s.first.After(s.last) {
		t.Fatalf("span %s to %s: want UTC, first not after last", s.first, s.last)
	}
	for o, at := range s.lastUse {
		if at.Before(s.first) || at.After(s.last) || s.lastQuery[o] == "" {
			t.Fatalf("use of %s at %s (query %q) outside %s..%s or without its query", o, at, s.lastQuery[o], s.first, s.last)
		}
	}
}

func addUsageSeeds(f *testing.F) {
	for _, tt := range usageFormatCases {
		f.Add(tt.log)
	}
	b, err := os.ReadFile("../examples/migrations/usage.log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
}

// FuzzUsageLog reads a log of any format through format detection.
func FuzzUsageLog(f *testing.F) {
	addUsageSeeds(f)
	f.Fuzz(func(t *testing.T, log string) {
		s := newUsageScan(usageObjects)
		checkUsageScan(t, s, s.read("log", strings.NewReader(log)))
	})
}

// FuzzCSVLog reads anything as a PostgreSQL csvlog.
func FuzzCSVLog(f *testing.F) {
	addUsageSeeds(f)
	f.Fuzz(func(t *testing.T, log string) {
		s := newUsageScan(usageObjects)
		checkUsageScan(t, s, s.readCSVLog("log", strings.NewReader(log)))
	})
}

// FuzzMySQLLog reads anything as a MySQL or MariaDB general query log.
func FuzzMySQLLog(f *testing.F) {
	addUsageSeeds(f)
	f.Fuzz(func(t *testing.T, log string) {
		s := newUsageScan(usageObjects)
		checkUsageScan(t, s, s.readMySQL("log", strings.NewReader(log)))
	})
}

// FuzzTSVLog reads anything as TIMESTAMP<TAB>QUERY lines.
func FuzzTSVLog(f *testing.F) {
	addUsageSeeds(f)
	f.Fuzz(func(t *testing.T, log string) {
		s := newUsageScan(usageObjects)
		checkUsageScan(t, s, s.readTSV("log", strings.NewReader(log)))
	})
}

// FuzzRedact: a password written as USER:PASSWORD@ in any accepted form
// of --db is gone after Redact, whatever it holds, and Redact is
// idempotent.
func FuzzRedact(f *testing.F) {
	f.Add("postgres", "secretpw")
	f.Add("root", "pa:ss@w/rd?x#y")
	f.Add("u", "'quoted pw'")
	forms := []string{
		"postgres://%u:%p@127.0.0.1:5432/test?sslmode=disable",
		"postgresql://%u:%p@db/app",
		"mysql://%u:%p@127.0.0.1:3306/test?parseTime=true",
		"%u:%p@tcp(127.0.0.1:3306)/test?timeout=5s",
		"%u:%p@/test",
	}
	f.Fuzz(func(t *testing.T, user, pw string) {
		if user == "" || pw == "" || strings.ContainsAny(user, ":@/?#") || strings.ContainsAny(pw, "\n") {
			return
		}
		for _, form := range forms {
			rest := strings.NewReplacer("%u", user, "%p", "").Replace(form)
			if strings.Contains(rest, pw) || strings.Contains(redacted, pw) {
				continue // the password is also a piece of the address: nothing to assert
			}
			dsn := strings.NewReplacer("%u", user, "%p", pw).Replace(form)
			if !strings.Contains(form, "://") && strings.Contains(dsn, "://") {
				continue // USER://… reads as a URL to every parser, ParseTarget included
			}
			got := Redact(dsn)
			// The mask and the @ after it may spell the password ("x@"
			// next to "xxxxx@"): look for it everywhere but there.
			masked := strings.Replace(got, ":"+redacted+"@", ":\x00@", 1)
			if !strings.ContainsRune(pw, 0) && strings.Contains(masked, pw) {
				t.Fatalf("Redact(%q) = %q shows the password %q", dsn, got, pw)
			}
			if again := Redact(got); again != got {
				t.Fatalf("Redact is not idempotent: %q then %q", got, again)
			}
		}
	})
}
