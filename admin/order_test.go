package admin

import (
	"regexp"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/cmdline"
)

// stamps are the times in CLI output, which differ between two harnesses.
var stamps = regexp.MustCompile(`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z?`)

// releaseIDs are the release ids in CLI output, which carry a time and a
// random suffix.
var releaseIDs = regexp.MustCompile(`r-\d{8}-\d{6}-[0-9a-f]{4}`)

// TestOptionsEitherSide: every command accepts its options before or after
// the names, with the same outcome. A command added without a row here
// fails the test.
func TestOptionsEitherSide(t *testing.T) {
	tests := []struct {
		command       string
		prep          []string // run first on each side
		after, before []string
	}{
		{command: "triage", after: []string{"triage", "shop", "--json"}, before: []string{"triage", "--json", "shop"}},
		{command: "status", after: []string{"status", "shop", "--json"}, before: []string{"status", "--json", "shop"}},
		{command: "flip", after: []string{"flip", "shop", "--reason", "r"}, before: []string{"flip", "--reason", "r", "shop"}},
		{command: "weights", after: []string{"weights", "shop", "blue=70", "green=30", "--reason", "r"},
			before: []string{"weights", "--reason", "r", "shop", "blue=70", "green=30"}},
		{command: "pool", after: []string{"pool", "shop", "green", "127.0.0.1:9009", "--release", "v9", "--reason", "r"},
			before: []string{"pool", "--release", "v9", "--reason", "r", "shop", "green", "127.0.0.1:9009"}},
		{command: "flag", after: []string{"flag", "shop", "new-cart", "--delete", "--reason", "r"},
			before: []string{"flag", "--delete", "--reason", "r", "shop", "new-cart"}},
		{command: "history", after: []string{"history", "shop", "--limit", "1"}, before: []string{"history", "--limit", "1", "shop"}},
		{command: "diff", prep: []string{"flip", "shop"}, after: []string{"diff", "shop", "--from", "1", "--to", "2"},
			before: []string{"diff", "--from", "1", "--to", "2", "shop"}},
		{command: "restore", prep: []string{"flip", "shop"}, after: []string{"restore", "shop", "--before-version", "2", "--reason", "r"},
			before: []string{"restore", "--before-version", "2", "--reason", "r", "shop"}},
		{command: "rollback", prep: []string{"flip", "shop"}, after: []string{"rollback", "shop", "--reason", "r"},
			before: []string{"rollback", "--reason", "r", "shop"}},
		{command: "config", after: []string{"config", "put", "payments", `{"timeout_ms": 800}`, "--reason", "r"},
			before: []string{"config", "--reason", "r", "put", "payments", `{"timeout_ms": 800}`}},
		{command: "changeset", prep: []string{"config", "put", "payments", `{"timeout_ms": 800}`}, after: []string{"changeset", "list", "--limit", "1"},
			before: []string{"changeset", "--limit", "1", "list"}},
		{command: "release", after: []string{"release", "rollback", "v9", "--plan"}, before: []string{"release", "--plan", "rollback", "v9"}},
		{command: "rollout", after: []string{"rollout", "start", "shop", "--target", "pool:green", "--steps", "10,100", "--bake", "1m"},
			before: []string{"rollout", "--target", "pool:green", "--steps", "10,100", "--bake", "1m", "start", "shop"}},
		{command: "release", after: []string{"release", "start", "shop", "v2", "127.0.0.1:9012", "--pool", "green", "--label", "v2", "--reason", "r"},
			before: []string{"release", "--pool", "green", "--label", "v2", "--reason", "r", "start", "shop", "v2", "127.0.0.1:9012"}},
		{command: "release", after: []string{"release", "affected", "v9", "--format", "csv"}, before: []string{"release", "--format", "csv", "affected", "v9"}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.command] = true
		t.Run(tt.command, func(t *testing.T) {
			run := func(args []string) (int, string, uint64) {
				h := newHarness(t, nil)
				env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
				if tt.prep != nil {
					if code, _, _ := runCLI(t, env, tt.prep...); code != cmdline.ExitOK {
						t.Fatalf("prep %q: exit %d", tt.prep, code)
					}
				}
				code, out, errOut := runCLI(t, env, args...)
				out = strings.ReplaceAll(stamps.ReplaceAllString(out+errOut, "TIME"), h.srv.URL, "URL")
				out = releaseIDs.ReplaceAllString(out, "RELEASE")
				return code, out, h.current("shop").Meta.Version
			}
			codeA, outA, vA := run(tt.after)
			codeB, outB, vB := run(tt.before)
			if codeA != codeB || outA != outB || vA != vB {
				t.Errorf("options after names: exit %d, v%d\n%s\noptions before: exit %d, v%d\n%s", codeA, vA, outA, codeB, vB, outB)
			}
			if codeA == cmdline.ExitUsage {
				t.Errorf("the command line was refused: %s", outA)
			}
		})
	}
	for _, c := range Commands() {
		if !covered[c.Name] {
			t.Errorf("command %s has no row", c.Name)
		}
	}
}
