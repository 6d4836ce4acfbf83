package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/cmdline"
)

// run calls Main and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestMainBadInput(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "app.db")
	tests := []struct {
		name string
		args []string
		want []string // fragments of stderr
	}{
		{"unknown command", []string{"sideways"}, []string{`"sideways"`, "accepted: create, up, down"}},
		{"bad db scheme", []string{"status", "--db", "oracle://x/y"}, []string{"--db", `"oracle://x/y"`, "accepted"}},
		{"bad to", []string{"up", "--db", db, "--to", "latest"}, []string{"--to", `"latest"`, "accepted"}},
		{"bad phase", []string{"create", "x", "--phase", "shrink", "--dir", dir}, []string{"--phase", `"shrink"`, "accepted: expand, contract"}},
		{"bad name", []string{"create", "drop table;", "--dir", dir}, []string{`"drop table;"`, "accepted"}},
		{"bad lock timeout", []string{"up", "--lock-timeout", "soon"}, []string{"--lock-timeout", `"soon"`, "accepted"}},
		{"bad now", []string{"lint", "--now", "tomorrow"}, []string{"--now", `"tomorrow"`, "RFC 3339"}},
		{"missing dir", []string{"up", "--db", db, "--dir", filepath.Join(dir, "nope")}, []string{"--dir", "nope", "accepted"}},
		{"snapshot without subcommand", []string{"snapshot"}, []string{"accepted: list, restore VERSION"}},
		{"snapshot restore bad version", []string{"snapshot", "restore", "v3", "--db", db}, []string{`"v3"`, "accepted"}},
		{"unknown flag", []string{"up", "--force"}, []string{"-force"}},
		{"option of another command", []string{"status", "--allow-irreversible"}, []string{"--allow-irreversible applies to up and down only"}},
		{"to for verify", []string{"verify", "--to", "3"}, []string{"--to applies to up and down only"}},
		{"missing usage file", []string{"lint", "--dir", "../examples/migrations", "--usage", filepath.Join(dir, "none.log")}, []string{"--usage", "none.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.args...)
			if code != cmdline.ExitUsage {
				t.Errorf("exit code %d, want %d; stderr: %s", code, cmdline.ExitUsage, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not mention %q", stderr, w)
				}
			}
		})
	}
	// Bad input changes nothing: no database file, no migration file.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("bad input left files behind: %v", entries)
	}
}

func TestMainWorkflow(t *testing.T) {
	dir := t.TempDir()
	migrations := filepath.Join(dir, "migrations")
	db := "sqlite:" + filepath.Join(dir, "app.db")

	code, out, stderr := run(t, "create", "add_users", "--dir", migrations, "--now", "2026-03-01T10:00:00Z")
	if code != cmdline.ExitOK || !strings.Contains(out, "20260301100000_add_users.sql") {
		t.Fatalf("create: exit %d, %s%s", code, out, stderr)
	}
	// The template's empty sections fail lint until they are written.
	if code, out, _ := run(t, "lint", "--dir", migrations); code != cmdline.ExitError || !strings.Contains(out, "empty-down") {
		t.Errorf("lint of a fresh template: exit %d, %s; want empty-down", code, out)
	}
	path := filepath.Join(migrations, "20260301100000_add_users.sql")
	tmpl, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(tmpl), "-- +switchback expand\n") {
		t.Errorf("template does not start with the phase annotation:\n%s", tmpl)
	}
	body := strings.Replace(string(tmpl), "-- TODO: the change.", "CREATE TABLE users (id INTEGER PRIMARY KEY);", 1)
	body = strings.Replace(body, "-- TODO: statements", "DROP TABLE users;\n-- statements", 1)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"lint", "--dir", migrations}, cmdline.ExitOK, "lint: 0 finding(s) in 1 migrations"},
		{[]string{"verify", "--dir", migrations}, cmdline.ExitOK, "verify: 1 of 1 migrations round-trip"},
		{[]string{"up", "--dir", migrations, "--db", db}, cmdline.ExitOK, "OK    up   20260301100000_add_users.sql"},
		{[]string{"status", "--dir", migrations, "--db", db}, cmdline.ExitOK, "applied"},
		{[]string{"snapshot", "list", "--dir", migrations, "--db", db}, cmdline.ExitOK, "no snapshots"},
		{[]string{"snapshot", "restore", "20260301100000", "--dir", migrations, "--db", db}, cmdline.ExitError, ""},
		{[]string{"down", "--dir", migrations, "--db", db}, cmdline.ExitOK, "database version: 0"},
	}
	for _, s := range steps {
		code, out, stderr := run(t, s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Errorf("%v: exit %d, want %d; output %q does not contain %q; stderr %s", s.args, code, s.code, out, s.want, stderr)
		}
	}

	code, out, _ = run(t, "up", "--dir", migrations, "--db", db, "--json")
	var rep struct {
		OK      bool `json:"ok"`
		Version int64
		Applied []struct{ File string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("up --json: %v\n%s", err, out)
	}
	if code != cmdline.ExitOK || !rep.OK || rep.Version != 20260301100000 || len(rep.Applied) != 1 {
		t.Errorf("up --json: exit %d, %+v", code, rep)
	}
}

func TestMainExamples(t *testing.T) {
	code, out, stderr := run(t, "lint", "--dir", "../examples/migrations", "--usage", "../examples/migrations/usage.log", "--now", "2026-02-20T23:00:00Z")
	if code != cmdline.ExitOK {
		t.Errorf("lint examples: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = run(t, "lint", "--dir", "../examples/migrations", "--usage", "../examples/migrations/usage.log", "--now", "2026-01-25T00:00:00Z", "--json")
	var rep struct {
		OK       bool
		Findings []Finding
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("lint --json: %v\n%s", err, out)
	}
	if code != cmdline.ExitError || rep.OK || len(rep.Findings) != 1 || rep.Findings[0].Rule != "used-recently" {
		t.Errorf("lint examples 15 days after last use: exit %d, %+v; want one used-recently finding", code, rep)
	}
}

// TestMainRedactsPasswords runs every command that takes --db with a
// password in the address, on servers that cannot be reached or addresses
// that do not parse, and requires the password in no output.
func TestMainRedactsPasswords(t *testing.T) {
	const pw = "secretpw"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00001_t.sql"), []byte("-- +goose Up\nCREATE TABLE t (id INTEGER);\n-- +goose Down\nDROP TABLE t;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dsns := []string{
		"postgres://postgres:" + pw + "@127.0.0.1:1/test?sslmode=disable",
		"postgres://postgres:" + pw + "@127.0.0.1:1/test?sslmode=bogus",
		"postgres://postgres:" + pw + "@127.0.0.1:notaport/test",
		"postgres://postgres:" + pw + "@127.0.0.1:1",
		"postgres://127.0.0.1:1/test?user=postgres&password=" + pw,
		"mysql://root:" + pw + "@127.0.0.1:1/test",
		"mysql://root:" + pw + "@127.0.0.1:1/test?tls=bogus",
		"mysql://root:" + pw + "@/test",
		"root:" + pw + "@tcp(127.0.0.1:1)/test",
		"root:" + pw + "@tcp(127.0.0.1:1/test",
		"host=127.0.0.1 password=" + pw,
		"oracle://scott:" + pw + "@127.0.0.1:1/orcl",
	}
	commands := [][]string{
		{"up"}, {"down"}, {"down", "--to", "0"}, {"status"}, {"verify"},
		{"snapshot", "list"}, {"snapshot", "restore", "1"}, {"resolve", "1"},
		{"lint"}, {"create", "x"},
	}
	for _, dsn := range dsns {
		for _, cmd := range commands {
			for _, asJSON := range []bool{false, true} {
				args := append(slices.Clone(cmd), "--db", dsn, "--dir", dir, "--lock-timeout", "1s")
				if asJSON {
					args = append(args, "--json")
				}
				if cmd[0] == "create" {
					args = append(args, "--dir", t.TempDir())
				}
				code, stdout, stderr := run(t, args...)
				if strings.Contains(stdout+stderr, pw) {
					t.Errorf("%q: exit %d; the password shows:\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
				}
				if cmd[0] != "lint" && cmd[0] != "create" && code == cmdline.ExitOK {
					t.Errorf("%q: exit 0, want a failure; stdout: %s", args, stdout)
				}
			}
		}
	}
}

// writeMigrations writes name/content pairs into a new directory.
func writeMigrations(t *testing.T, kv ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := os.WriteFile(filepath.Join(dir, kv[i]), []byte(kv[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMainStatusChangesNothing(t *testing.T) {
	dir := writeMigrations(t, "00001_users.sql", usersV1)
	path := filepath.Join(t.TempDir(), "app.db")
	code, _, stderr := run(t, "status", "--db", "sqlite:"+path, "--dir", dir)
	if code != cmdline.ExitUsage || !strings.Contains(stderr, path) || !strings.Contains(stderr, "does not exist") {
		t.Errorf("status of a missing file: exit %d, stderr %q; want a usage error naming %s", code, stderr, path)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("status created %s: %v", path, err)
	}
	for _, args := range [][]string{{"snapshot", "list"}} {
		if code, _, _ := run(t, append(args, "--db", "sqlite:"+path, "--dir", dir)...); code != cmdline.ExitUsage {
			t.Errorf("%v of a missing file: exit %d, want %d", args, code, cmdline.ExitUsage)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v created %s: %v", args, path, err)
		}
	}
}

func TestMainIrreversible(t *testing.T) {
	dir := writeMigrations(t,
		"00001_users.sql", usersV1,
		"00002_nick.sql", "-- +goose Up\nALTER TABLE users ADD COLUMN nick VARCHAR(50);\n",
	)
	db := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	code, stdout, stderr := run(t, "up", "--db", db, "--dir", dir)
	if code != cmdline.ExitError || !strings.Contains(stderr, "00002_nick.sql") || !strings.Contains(stderr, "--allow-irreversible") {
		t.Errorf("up: exit %d, stdout %q, stderr %q; want a refusal naming 00002_nick.sql and --allow-irreversible", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "status", "--db", db, "--dir", dir)
	if code != cmdline.ExitOK || strings.Contains(stdout, "applied ") || !strings.Contains(stdout, "00002_nick.sql (irreversible: no Down section)") {
		t.Errorf("status after the refused up: exit %d\n%s\nwant nothing applied and 00002 marked irreversible", code, stdout)
	}
	code, stdout, stderr = run(t, "up", "--db", db, "--dir", dir, "--allow-irreversible", "--json")
	var rep struct {
		OK      bool
		Applied []Applied
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("up --json: %v\n%s%s", err, stdout, stderr)
	}
	if code != cmdline.ExitOK || len(rep.Applied) != 2 || rep.Applied[0].Irreversible || !rep.Applied[1].Irreversible {
		t.Errorf("up --allow-irreversible --json: exit %d, %+v; want 00002 marked irreversible", code, rep)
	}
	code, stdout, _ = run(t, "down", "--db", db, "--dir", dir, "--allow-irreversible")
	if code != cmdline.ExitOK || !strings.Contains(stdout, "IRREVERSIBLE") {
		t.Errorf("down --allow-irreversible: exit %d\n%s\nwant the line marked IRREVERSIBLE", code, stdout)
	}
}

func TestMainFailedDown(t *testing.T) {
	dir := writeMigrations(t, "00001_t.sql", "-- +goose Up\nCREATE TABLE t (id INTEGER);\n-- +goose Down\nDROP TABLE no_such_table;\n")
	db := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	if code, stdout, stderr := run(t, "up", "--db", db, "--dir", dir); code != cmdline.ExitOK {
		t.Fatalf("up: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ := run(t, "down", "--db", db, "--dir", dir)
	if code != cmdline.ExitError || strings.Contains(stdout, "nothing of") ||
		!strings.Contains(stdout, "00001_t.sql is still applied") || !strings.Contains(stdout, "database version: 1") {
		t.Errorf("failed down: exit %d\n%s\nwant it to say 00001_t.sql is still applied", code, stdout)
	}
}

func TestMainVerifyFailingDown(t *testing.T) {
	dir := writeMigrations(t,
		"00001_t.sql", "-- +goose Up\nCREATE TABLE t (id INTEGER);\n-- +goose Down\nDROP TABLE t;\n",
		"00002_u.sql", "-- +goose Up\nCREATE TABLE u (id INTEGER);\n-- +goose Down\nDROP TABLEX u;\n",
	)
	code, stdout, _ := run(t, "verify", "--dir", dir)
	if code != cmdline.ExitError || !strings.Contains(stdout, "FAIL  00002_u.sql (version 2): down failed:") ||
		!strings.Contains(stdout, "TABLEX") || !strings.Contains(stdout, "verify: 1 of 2 migrations round-trip") {
		t.Errorf("verify with a broken down: exit %d\n%s\nwant a FAIL line for 00002_u.sql and 1 of 2", code, stdout)
	}
}
