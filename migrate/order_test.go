package migrate

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/cmdline"
)

// durations differ from run to run.
var durations = regexp.MustCompile(`"duration_ns": \d+|\d+(\.\d+)?(ns|µs|ms|s)\b`)

// TestOptionsEitherSide: flags before the command, between it and its
// names, or after them give the same outcome.
func TestOptionsEitherSide(t *testing.T) {
	tests := []struct {
		name  string
		forms [][]string // DIR and DB are replaced per form
	}{
		{"create", [][]string{
			{"create", "add_x", "--phase", "expand", "--dir", "DIR", "--now", "2026-11-29T17:00:00Z", "--json"},
			{"create", "--phase", "expand", "add_x", "--dir", "DIR", "--now", "2026-11-29T17:00:00Z", "--json"},
			{"--dir", "DIR", "--now", "2026-11-29T17:00:00Z", "--json", "create", "--phase", "expand", "add_x"},
		}},
		{"up", [][]string{
			{"up", "--db", "DB", "--dir", "../examples/migrations", "--to", "2", "--json"},
			{"--db", "DB", "--json", "up", "--dir", "../examples/migrations", "--to", "2"},
		}},
		{"status", [][]string{
			{"status", "--db", "DB", "--dir", "../examples/migrations"},
			{"--db", "DB", "--dir", "../examples/migrations", "status"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first string
			for i, form := range tt.forms {
				dir := t.TempDir()
				args := make([]string, len(form))
				for j, a := range form {
					a = strings.ReplaceAll(a, "DIR", dir)
					args[j] = strings.ReplaceAll(a, "DB", "sqlite:"+filepath.Join(dir, "app.db"))
				}
				if tt.name == "status" {
					// status only reads: the database must exist (an empty
					// file is an empty SQLite database).
					if err := os.WriteFile(filepath.Join(dir, "app.db"), nil, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				code, out, errOut := run(t, args...)
				if code != cmdline.ExitOK {
					t.Fatalf("%q: exit %d: %s", args, code, errOut)
				}
				out = durations.ReplaceAllString(strings.ReplaceAll(out, dir, "DIR"), "D")
				if i == 0 {
					first = out
				} else if out != first {
					t.Errorf("%q printed\n%s\nwant, as %q,\n%s", args, out, tt.forms[0], first)
				}
			}
		})
	}
}
