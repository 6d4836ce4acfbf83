package admin

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// HelpGroup is a titled set of commands in the overview.
type HelpGroup struct {
	Title    string
	Commands []CommandInfo
}

// helpGroups orders the commands by the question that brings someone to
// them: what is wrong first, then how to change traffic.
var helpGroups = []struct {
	title string
	names []string
}{
	{"Something is wrong", []string{"triage", "status", "history", "diff", "rollback", "restore"}},
	{"Change traffic", []string{"flip", "weights", "flag", "pool", "rollout"}},
	{"Configuration of services", []string{"config", "changeset"}},
	{"Releases", []string{"release"}},
}

// examples are shown by each command's --help.
var examples = map[string][]string{
	"triage":   {"switchback triage checkout"},
	"status":   {"switchback status checkout", "switchback status"},
	"flip":     {`switchback flip checkout --reason "ship v2"          # from blue=100 green=0 to blue=0 green=100`},
	"weights":  {`switchback weights checkout blue=70 green=30 --reason "canary 30%"`},
	"pool":     {`switchback pool checkout green 10.0.0.7:8080 10.0.0.8:8080 --release v2.1 --reason "new build"`},
	"flag":     {`switchback flag checkout new_payment_flow 0 --reason "cohort failing"`, "switchback flag checkout dark_mode --delete"},
	"history":  {"switchback history checkout --limit 10"},
	"diff":     {"switchback diff checkout --from 3 --to 5"},
	"restore":  {`switchback restore checkout 3 --reason "back to v3"`, `switchback restore checkout --before 2026-11-29T17:21:00Z --reason "undo the incident"`, `switchback restore checkout --before-version 7 --reason "undo v7 and later"`},
	"rollback": {`switchback rollback checkout --reason "undo"`},
	"config": {`switchback config patch payments '{"db": {"pool": {"max": 50}}}' --reason "more connections"`,
		"switchback config diff payments", `switchback config rollback payments --reason "latency up"`,
		"switchback config watch payments --write /etc/payments.json --signal 1234:SIGHUP"},
	"changeset": {"switchback changeset apply raise.json", `switchback changeset revert 01764441480123456789-a1b2c3d4 --reason "latency up"`},
	"release": {`switchback release start checkout v2.1 --pool green 10.0.0.7:8080 --label v2.1 --database main=7..8 --reason "ship v2.1"`,
		"switchback release finish v2.1", "switchback release show v2.1",
		`switchback release start checkout v2.1 --pool green 10.0.0.7:8080 --apply '{"pool_upstreams": true, "weights": {"blue": 0, "green": 100}}'`,
		"switchback release rollback v2.1 --plan", `switchback release rollback v2.1 --reason "checkout errors"`, "switchback release redeploy v2.0",
		"switchback release affected v2.1 --format csv > affected.csv"},
	"rollout": {`switchback rollout start checkout --target pool:green --steps 10,50,100 --bake 30m --reason "ship v2"`, "switchback rollout status checkout"},
}

// Example returns a command's examples, one per line; "" if it has none.
func Example(name string) string { return strings.Join(examples[name], "\n") }

// Overview is the head of `switchback help`: Switchback's commands by
// group, then more groups the host program adds (migrate), then how
// options work.
func Overview(more ...HelpGroup) string {
	var b strings.Builder
	b.WriteString("Switchback: a rollback gateway, Caddy with Switchback's modules.\n")
	var groups []HelpGroup
	for _, g := range helpGroups {
		hg := HelpGroup{Title: g.title}
		for _, n := range g.names {
			if c, ok := findCommand(n); ok {
				hg.Commands = append(hg.Commands, c)
			}
		}
		groups = append(groups, hg)
	}
	for _, g := range append(groups, more...) {
		fmt.Fprintf(&b, "\n%s:\n", g.Title)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, c := range g.Commands {
			fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Short)
		}
		tw.Flush()
	}
	b.WriteString(`
Options may come before or after names. Commands talk to the admin API at
--admin URL ($SWITCHBACK_ADMIN, default ` + DefaultAdminURL + `) with --token
($SWITCHBACK_TOKEN); changes take --reason TEXT and --if-match VERSION.
Run 'switchback COMMAND --help' for a command's options and an example.

To run the gateway: switchback run --config Caddyfile (Caddy's commands follow).
`)
	return b.String()
}
