package main

import (
	"slices"
	"strings"

	"github.com/a8e2c47e/switchback/admin"
)

// valueFlags are the options of Switchback's commands that take a value,
// so the word after one is not a command name.
var valueFlags = []string{
	// admin commands
	"admin", "token", "reason", "if-match", "limit", "from", "to", "release", "before", "before-version", "target", "steps", "bake",
	"pool", "label", "database", "apply",
	// migrate
	"db", "database", "config", "dir", "lock-timeout", "now", "phase", "usage",
	// drill
	"trigger", "report", "flag-after", "timeout", "rate", "deployment", "traffic", "service", "pattern",
}

// commandFirst moves a Switchback command named after options to the
// front ("switchback --json status checkout" is "switchback status --json
// checkout"): Caddy's command line finds a command only before options it
// does not know. Anything else is left as it is, for Caddy.
func commandFirst(args []string) []string {
	if len(args) == 0 || !strings.HasPrefix(args[0], "-") {
		return args
	}
	names := []string{"migrate", "drill", "runbook"}
	for _, c := range admin.Commands() {
		names = append(names, c.Name)
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return args
		}
		if strings.HasPrefix(a, "-") {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !hasValue && slices.Contains(valueFlags, name) {
				i++ // its value
			}
			continue
		}
		if !slices.Contains(names, a) {
			return args // a name that is not ours: Caddy's to judge
		}
		out := append([]string{a}, args[:i]...)
		return append(out, args[i+1:]...)
	}
	return args
}
