package migrate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/cmdline"
)

// TestMainDatabaseFlag: --database NAME takes the address and migrations
// directory a resolver reads from the gateway's configuration; the flags
// that contradict it are refused before anything is opened.
func TestMainDatabaseFlag(t *testing.T) {
	dir := t.TempDir()
	migrations := filepath.Join(dir, "migrations")
	if err := os.Mkdir(migrations, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(migrations, "00001_orders.sql"),
		[]byte("-- +goose Up\nCREATE TABLE orders (id INTEGER PRIMARY KEY);\n-- +goose Down\nDROP TABLE orders;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(dir, "app.db")
	var asked []string
	resolve := func(config, name string) (string, string, error) {
		asked = append(asked, config+" "+name)
		switch name {
		case "main":
			return "sqlite:" + dbFile, migrations, nil
		case "nodir":
			return "sqlite:" + dbFile, "", nil
		case "badurl":
			return "oracle://u:hunter2@h/db", "", nil
		}
		return "", "", errors.New(`--database "` + name + `": no database of that name in ` + config + "; accepted: main, nodir")
	}
	runWith := func(resolve DatabaseResolver, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := MainWith(t.Context(), args, &out, &errOut, resolve)
		return code, out.String(), errOut.String()
	}

	code, stdout, stderr := runWith(resolve, "up", "--database", "main", "--config", "/etc/caddy/Caddyfile")
	if code != cmdline.ExitOK || !strings.Contains(stdout, "00001_orders.sql") {
		t.Fatalf("up --database main: exit %d\n%s%s", code, stdout, stderr)
	}
	if len(asked) != 1 || asked[0] != "/etc/caddy/Caddyfile main" {
		t.Errorf("resolver asked %q, want the --config file and the name", asked)
	}
	if _, err := os.Stat(dbFile); err != nil {
		t.Errorf("the resolved database was not migrated: %v", err)
	}
	asked = nil
	if code, _, stderr := runWith(resolve, "status", "--database", "nodir", "--dir", migrations); code != cmdline.ExitOK {
		t.Errorf("--dir for a database without a migrations directory: exit %d: %s", code, stderr)
	}
	if len(asked) != 1 || asked[0] != "./Caddyfile nodir" {
		t.Errorf("resolver asked %q, want ./Caddyfile by default", asked)
	}

	tests := []struct {
		name    string
		resolve DatabaseResolver
		args    []string
		want    []string
	}{
		{"both --db and --database", resolve, []string{"status", "--db", "sqlite:" + dbFile, "--database", "main"}, []string{"--db and --database main: give one"}},
		{"--config alone", resolve, []string{"status", "--config", "x/Caddyfile"}, []string{`--config "x/Caddyfile": applies with --database only`}},
		{"unknown name", resolve, []string{"status", "--database", "orders"}, []string{`"orders"`, "accepted: main, nodir"}},
		{"--dir against the configured one", resolve, []string{"status", "--database", "main", "--dir", dir}, []string{"--dir", "migrations directory in ./Caddyfile is", migrations}},
		{"bad resolved address", resolve, []string{"status", "--database", "badurl"}, []string{"--database badurl (in ./Caddyfile)", "unknown scheme"}},
		{"no resolver", nil, []string{"status", "--database", "main"}, []string{"--database main", "give --db URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runWith(tt.resolve, tt.args...)
			if code != cmdline.ExitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, cmdline.ExitUsage, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not mention %q", stderr, w)
				}
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("stderr shows the password: %s", stderr)
			}
		})
	}
}
