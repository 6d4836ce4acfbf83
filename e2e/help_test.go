package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/admin"
)

// TestHelp: the binary's help lists Switchback's commands, grouped, before
// Caddy's, and every Switchback command's help has an example.
func TestHelp(t *testing.T) {
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := exec.CommandContext(t.Context(), binary, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		_ = cmd.Run() // exit codes differ between forms; the text is the point
		return out.String()
	}
	for _, form := range [][]string{{"help"}, {"--help"}, {"-h"}, {}} {
		out := run(form...)
		caddy := strings.Index(out, "Available Commands:")
		if caddy < 0 || !strings.Contains(out[caddy:], "reverse-proxy") {
			t.Fatalf("switchback %q does not list Caddy's commands:\n%s", form, out)
		}
		prev := -1
		for _, want := range []string{"Something is wrong:", "\n  triage ", "\n  restore ", "Change traffic:", "\n  weights ", "Database:", "\n  migrate ", "Drills:", "\n  drill "} {
			i := strings.Index(out, want)
			if i < 0 || i > caddy || i < prev {
				t.Errorf("switchback %q: %q at %d, want it in order before Caddy's commands at %d", form, want, i, caddy)
			}
			prev = i
		}
	}
	for _, c := range admin.Commands() {
		out := run(c.Name, "--help")
		if !strings.Contains(out, "example:\n  switchback "+c.Name) {
			t.Errorf("switchback %s --help has no example:\n%s", c.Name, out)
		}
	}
	for _, c := range []string{"migrate", "drill"} {
		if out := run(c, "--help"); !strings.Contains(out, "Examples:\n  switchback "+c) {
			t.Errorf("switchback %s --help has no example:\n%s", c, out)
		}
	}
}
