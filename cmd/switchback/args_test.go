package main

import (
	"slices"
	"strings"
	"testing"
)

func TestCommandFirst(t *testing.T) {
	tests := []struct{ in, want string }{
		{"status checkout --json", "status checkout --json"},
		{"--json status checkout", "status --json checkout"},
		{"--admin http://127.0.0.1:9180 --json triage checkout", "triage --admin http://127.0.0.1:9180 --json checkout"},
		{"--reason status flip checkout", "flip --reason status checkout"},
		{"--reason=x flip checkout", "flip --reason=x checkout"},
		{"--db sqlite:./app.db migrate up", "migrate --db sqlite:./app.db up"},
		{"--help", "--help"},
		{"--version", "--version"},
		{"--config Caddyfile run", "--config Caddyfile run"}, // Caddy's: left alone
		{"", ""},
	}
	for _, tt := range tests {
		if got := strings.Join(commandFirst(strings.Fields(tt.in)), " "); got != tt.want {
			t.Errorf("commandFirst(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The input is not modified.
	in := strings.Fields("--json status checkout")
	orig := slices.Clone(in)
	commandFirst(in)
	if !slices.Equal(in, orig) {
		t.Errorf("input modified: %q", in)
	}
}
