package runbook

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/drill/result"
	"github.com/a8e2c47e/switchback/migrate"
)

// exampleMigrations are the repository's example migrations, applied up to
// the data migration (3, which snapshots users).
func exampleMigrations(t *testing.T) (db, dir string) {
	t.Helper()
	dir, err := filepath.Abs("../examples/migrations")
	if err != nil {
		t.Fatal(err)
	}
	db = "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	m, err := migrate.Open(t.Context(), db, os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	return db, dir
}

func TestRunbookMarkdown(t *testing.T) {
	s := newServer(t)
	db, dir := exampleMigrations(t)
	var out, errOut bytes.Buffer
	code := Main(t.Context(), []string{"shop", "--admin", s.url, "--db", db, "--dir", dir}, &out, &errOut, nil)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	md := out.String()
	for _, pattern := range Patterns {
		i := strings.Index(md, "\n## "+Titles[pattern]+"\n")
		if i < 0 {
			t.Fatalf("no section %q in:\n%s", Titles[pattern], md)
		}
		section := md[i:]
		if j := strings.Index(section[1:], "\n## "); j >= 0 {
			section = section[:j+1]
		}
		for _, want := range []string{"**When it is needed.**", "**Roll back.**", "**Verify.**", "**Last drill.** never drilled"} {
			if !strings.Contains(section, want) {
				t.Errorf("section %s lacks %q:\n%s", pattern, want, section)
			}
		}
	}
	for _, want := range []string{
		// flip: traffic is split 50/50 with no retained target, so all of it
		// goes to the pool with most (the first, on a tie).
		"switchback weights shop blue=100 green=0 --reason 'runbook: roll back flip' --admin " + s.url,
		"switchback flag shop new-cart 0",
		"switchback config rollback payments",
		"curl -fsS -X POST " + s.url + "/api/v1/services/payments/rollback",
		"switchback migrate down --to 2 --db " + db,
		"switchback migrate snapshot restore 3 --db " + db,
		"the guard watches requests through the gateway, not schemas",
		// The admin API serves releases now; the deployment has none.
		"This deployment has no release to roll back.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("runbook lacks %q:\n%s", want, md)
		}
	}
	if t.Failed() {
		return
	}

	// The commands of the runbook, as Live's parameters give them, roll
	// back the live server and the database.
	b, err := Live(t.Context(), Source{Client: s.client, Admin: s.url, Deployment: "shop", Database: db, MigrationsDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p := b.Params()
	p.Reason = "drill: it's a test"
	for _, pattern := range []string{"flip", "flag", "config", "migration"} {
		for _, c := range Rollback(pattern, p) {
			var stdout, stderr bytes.Buffer
			if code := Run(t.Context(), c, &stdout, &stderr, nil); code != 0 {
				t.Fatalf("%s: exit %d: %s", c.Shell(), code, stderr.String())
			}
		}
		s.check(t, pattern)
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
			t.Errorf("after the migration rollback, migration %d is %s; want 1 and 2 applied, the rest pending", s.Version, s.State)
		}
	}
}

func TestRunbookHidesDatabasePassword(t *testing.T) {
	b := Book{Admin: "http://127.0.0.1:9180", Database: "postgres://app:s3cret@db:5432/app", MigrationsDir: "m",
		Migrations: []migrate.Status{{Version: 1, State: "applied"}, {Version: 2, State: "applied"}}}
	b.Deployment.Name = "shop"
	md := Markdown(b)
	if strings.Contains(md, "s3cret") {
		t.Errorf("the runbook shows the database password:\n%s", md)
	}
	if !strings.Contains(md, `switchback migrate down --to 1 --db "$DATABASE_URL" --dir m`) {
		t.Errorf("runbook lacks the down reading $DATABASE_URL:\n%s", md)
	}
}

func TestRunbookLastDrill(t *testing.T) {
	at := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	rec := int64(1500)
	b := Book{Drills: LastDrills([]result.Result{
		{Pattern: "flip", Trigger: result.Manual, Passed: true, Started: at.Add(-time.Hour), Durations: result.Durations{Recovered: &rec}},
		{Pattern: "flip", Trigger: result.Guard, Passed: true, Started: at, Target: "http://staging:9180", Deployment: "shop-staging", Durations: result.Durations{Recovered: &rec}, Requests: 300, FailedRequests: 12},
		{Pattern: "migration", Trigger: result.Guard, NotApplicable: "no guard", Started: at},
		{Pattern: "migration", Trigger: result.Manual, Started: at.Add(-time.Minute), Error: "state differs",
			Diff: []result.Difference{{Part: "schema"}}},
	})}
	b.Deployment.Name = "shop"
	md := Markdown(b)
	for _, want := range []string{
		"**Last drill.** passed on 2026-11-01T03:00:00Z against `shop-staging` at http://staging:9180 (guard trigger, trigger to recovered 1.5 s, 12 of 300 requests failed).",
		"**Last drill.** FAILED on 2026-11-01T02:59:00Z in the sandbox (manual trigger, 0 of 0 requests failed): state differs; the state after differed in schema.",
		"**Last drill.** never drilled. `switchback drill flag` runs one.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("runbook lacks %q:\n%s", want, md)
		}
	}
}

// TestRunbookLinesRun runs the lines exactly as the Markdown prints them:
// each switchback line, split as a shell splits it, and each curl line
// through sh, each on a fresh server, and checks what it rolled back.
func TestRunbookLinesRun(t *testing.T) {
	for _, via := range []string{"switchback", "curl"} {
		t.Run(via, func(t *testing.T) {
			s := newServer(t)
			var out, errOut bytes.Buffer
			if code := Main(t.Context(), []string{"shop", "--admin", s.url}, &out, &errOut, nil); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			ran := 0
			for _, line := range codeLines(out.String()) {
				if !strings.HasPrefix(line, via+" ") {
					continue
				}
				ran++
				var stdout, stderr bytes.Buffer
				if via == "curl" {
					cmd := exec.CommandContext(t.Context(), "sh", "-c", line)
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					if err := cmd.Run(); err != nil {
						t.Fatalf("%s: %v: %s", line, err, stderr.String())
					}
					continue
				}
				args, err := shellWords(strings.TrimPrefix(line, "switchback "))
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				if code := Run(t.Context(), Command{Args: args}, &stdout, &stderr, nil); code != 0 {
					t.Fatalf("%s: exit %d: %s", line, code, stderr.String())
				}
			}
			if ran != 3 {
				t.Errorf("ran %d %s lines, want flip, flag and config's", ran, via)
			}
			for _, pattern := range []string{"flip", "flag", "config"} {
				s.check(t, pattern)
			}
		})
	}
}

// codeLines returns the lines of the Markdown's code blocks.
func codeLines(md string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(md, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "```"):
			in = !in
		case in:
			out = append(out, l)
		}
	}
	return out
}

// shellWords splits a line the way sh does for the quoting Shell uses:
// bare words and single-quoted strings, '\” for a quote.
func shellWords(line string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		inQ   bool
		have  bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQ && c == '\'':
			inQ = false
		case inQ:
			cur.WriteByte(c)
		case c == '\'':
			inQ, have = true, true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			have = true
		case c == ' ':
			if have {
				words = append(words, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQ {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if have {
		words = append(words, cur.String())
	}
	return words, nil
}
