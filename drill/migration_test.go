package drill

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/a8e2c47e/switchback/drill/result"
	"github.com/a8e2c47e/switchback/runbook"
)

// inProcess runs commands as the switchback binary would, in this process.
type inProcess struct{}

func (inProcess) Run(ctx context.Context, args []string) (string, error) {
	var out bytes.Buffer
	if code := runbook.Run(ctx, runbook.Command{Args: args}, &out, &out, func(string) string { return "" }); code != 0 {
		return out.String(), fmt.Errorf("exit status %d", code)
	}
	return out.String(), nil
}

// databases returns a fresh SQLite database, and a fresh PostgreSQL one
// when SWITCHBACK_TEST_POSTGRES is set.
func databases(t *testing.T) map[string]string {
	t.Helper()
	dbs := map[string]string{"sqlite": "sqlite:" + filepath.Join(t.TempDir(), "drill.db")}
	base := os.Getenv("SWITCHBACK_TEST_POSTGRES")
	if base == "" {
		t.Log("SWITCHBACK_TEST_POSTGRES is not set: PostgreSQL skipped")
		return dbs
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SWITCHBACK_TEST_POSTGRES: %v", err)
	}
	name := fmt.Sprintf("switchback_drill_%d", time.Now().UnixNano())
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database on %s: %v", u.Redacted(), err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			db.Close()
		}
	})
	u.Path = "/" + name
	dbs["postgres"] = u.String()
	return dbs
}

// drive runs p's manual drill the way the runner does, and returns the
// states before and after and the time from the first rollback command
// to the first good probe.
func drive(t *testing.T, p *Migration, env *Env) (before, after State, recovered time.Duration) {
	var err error
	t.Helper()
	ctx := t.Context()
	if err := p.Applicable(ctx, env, Manual); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Cleanup(context.WithoutCancel(ctx), env); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	start := time.Now()
	if err := p.Prepare(ctx, env); err != nil {
		t.Fatal(err)
	}
	t.Logf("prepare (%d rows): %v", p.Rows, time.Since(start))
	before, err = p.Capture(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if a := p.Probe(ctx, env); !a.Good {
		t.Fatalf("probe before the break: %+v, want good", a)
	}
	if err := p.Break(ctx, env, Manual); err != nil {
		t.Fatal(err)
	}
	if a := p.Probe(ctx, env); a.Good || a.Failed {
		t.Fatalf("probe after the break: %+v, want neither good nor failed", a)
	}
	broken, err := p.Capture(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	// Both migrations changed something a rollback has to undo: the
	// schema (the expand) and the rows (the data migration).
	for part := range before {
		if broken[part] == before[part] {
			t.Fatalf("%s unchanged by the migrations: %s", part, before[part])
		}
	}
	trigger := time.Now()
	for _, c := range p.Rollback(env) {
		if out, err := env.CLI.Run(ctx, c.Args); err != nil {
			t.Fatalf("%s: %v\n%s", runbook.Command(c).Shell(), err, out)
		}
	}
	if a := p.Probe(ctx, env); !a.Good {
		t.Fatalf("probe after the rollback: %+v, want good", a)
	}
	recovered = time.Since(trigger)
	after, err = p.Capture(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	return before, after, recovered
}

func TestMigrationDrillRestoresSchemaAndRows(t *testing.T) {
	for dialect, db := range databases(t) {
		t.Run(dialect, func(t *testing.T) {
			p := &Migration{Rows: 10_000}
			env := &Env{Database: db, CLI: inProcess{}}
			before, after, took := drive(t, p, env)
			t.Logf("%s: trigger to recovered %v", dialect, took)
			if !strings.Contains(before["rows drill_accounts"], "10000 rows") {
				t.Errorf("rows before = %q, want 10000 rows", before["rows drill_accounts"])
			}
			for part, b := range before {
				if after[part] != b {
					t.Errorf("%s differs after the rollback:\nbefore: %s\nafter:  %s", part, b, after[part])
				}
			}
			if len(after) != len(before) {
				t.Errorf("parts after %v, before %v", after, before)
			}
			if took > 30*time.Second {
				t.Errorf("trigger to recovered %v, the goal is under 30 s", took)
			}
		})
	}
}

// A down that leaves the column the up added must show in the state: the
// schema dump has the column, the rows' checksum changed.
func TestMigrationDrillBrokenDownDiffers(t *testing.T) {
	for dialect, db := range databases(t) {
		t.Run(dialect, func(t *testing.T) {
			p := &Migration{Rows: 1000, Migrations: os.DirFS("testdata/brokendown")}
			before, after, _ := drive(t, p, &Env{Database: db, CLI: inProcess{}})
			if strings.Contains(before["schema"], "email_verified") {
				t.Fatalf("schema before has the column already:\n%s", before["schema"])
			}
			if !strings.Contains(after["schema"], "column drill_accounts.email_verified") {
				t.Errorf("schema after the broken down lacks the column it left:\n%s", after["schema"])
			}
			if after["rows drill_accounts"] == before["rows drill_accounts"] {
				t.Errorf("rows checksum unchanged by a down that left a column: %s", after["rows drill_accounts"])
			}
		})
	}
}

func TestMigrationGuardNotApplicable(t *testing.T) {
	p := &Migration{}
	err := p.Applicable(t.Context(), &Env{Database: "sqlite:x.db"}, Guard)
	if !errors.Is(err, ErrNotApplicable) || !strings.Contains(err.Error(), "guard") {
		t.Errorf("guard trigger: %v, want ErrNotApplicable naming the guard", err)
	}
	if err := p.Applicable(t.Context(), &Env{}, Manual); !errors.Is(err, ErrNotApplicable) {
		t.Errorf("no database: %v, want ErrNotApplicable", err)
	}
}

// A database that has migrations of its own is not the drill's to use.
func TestMigrationDrillRefusesUsedDatabase(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	first := &Migration{Rows: 10}
	env := &Env{Database: db, CLI: inProcess{}}
	if err := first.Prepare(t.Context(), env); err != nil {
		t.Fatal(err)
	}
	second := &Migration{Rows: 10}
	err := second.Prepare(t.Context(), env)
	if err == nil || !strings.Contains(err.Error(), "database of its own") {
		t.Errorf("second drill on a used database: %v, want a refusal", err)
	}
	second.Cleanup(t.Context(), env)
	if err := first.Cleanup(t.Context(), env); err != nil {
		t.Fatal(err)
	}
	// Cleaned up, the database can be drilled again.
	third := &Migration{Rows: 10}
	if err := third.Prepare(t.Context(), env); err != nil {
		t.Errorf("after cleanup: %v", err)
	}
	third.Cleanup(t.Context(), env)
}

// The runner drills the migration as `switchback drill migration` does:
// it passes, measures trigger to recovered, and with a broken down it
// fails and shows the column the down left.
func TestMigrationDrillRun(t *testing.T) {
	for dialect, db := range databases(t) {
		t.Run(dialect, func(t *testing.T) {
			res := Run(t.Context(), &Env{Target: "test", Database: db, CLI: inProcess{}}, &Migration{}, Manual, Options{})
			if !res.Passed || !res.StateEqual || res.Flagged {
				t.Fatalf("drill did not pass: %+v", res)
			}
			if res.Durations.Recovered == nil || res.Durations.Decided == nil {
				t.Errorf("durations not measured: %+v", res.Durations)
			} else {
				t.Logf("%s: decided %d ms, recovered %d ms, total %d ms", dialect, *res.Durations.Decided, *res.Durations.Recovered, res.Durations.Total)
			}
			var commands []string
			for _, s := range res.Steps {
				if s.Command != "" {
					commands = append(commands, s.Command)
				}
			}
			if len(commands) != 3 || !strings.Contains(commands[0], "migrate down --to 2") ||
				!strings.Contains(commands[1], "migrate snapshot restore 3") || !strings.Contains(commands[2], "migrate down --to 1") {
				t.Errorf("rollback commands run = %q, want down --to 2, snapshot restore 3, down --to 1", commands)
			}

			broken := Run(t.Context(), &Env{Target: "test", Database: db, CLI: inProcess{}},
				&Migration{Rows: 1000, Migrations: os.DirFS("testdata/brokendown")}, Manual, Options{})
			if broken.Passed || broken.StateEqual {
				t.Fatalf("drill with a broken down passed: %+v", broken)
			}
			var schema *result.Difference
			for i, d := range broken.Diff {
				if d.Part == "schema" {
					schema = &broken.Diff[i]
				}
			}
			if schema == nil || !slices.ContainsFunc(schema.Lines, func(l string) bool {
				return strings.HasPrefix(l, "+") && strings.Contains(l, "email_verified")
			}) {
				t.Errorf("diff does not show the column the down left: %+v", broken.Diff)
			}

			na := Run(t.Context(), &Env{Target: "test", Database: db, CLI: inProcess{}}, &Migration{}, Guard, Options{})
			if na.NotApplicable == "" || na.Passed {
				t.Errorf("guard trigger: %+v, want not applicable", na)
			}
		})
	}
}
