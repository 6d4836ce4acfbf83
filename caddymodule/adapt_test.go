package caddymodule

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestCaddyfileAdapt runs every testdata/caddyfile_adapt/*.caddyfiletest:
// a Caddyfile, a line of dashes, and the JSON it must adapt to (Caddy's own
// golden-file format).
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			parts := regexp.MustCompile(`(?m)^-{10,}\s*$`).Split(string(data), 2)
			if len(parts) != 2 {
				t.Fatalf("%s: want a Caddyfile, a line of dashes, then JSON", f)
			}
			want := strings.TrimSpace(parts[1])
			if !caddytest.CompareAdapt(t, f, parts[0], "caddyfile", want) {
				t.Errorf("%s: adapted JSON differs (diff above)", f)
			}
		})
	}
}

// TestCaddyfileErrors: every malformed directive is refused with the file,
// the line, the offending value and what would be accepted.
func TestCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"unknown pool in live", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nlive purple", []string{`live "purple": unknown pool`, `"blue", "green"`, "Caddyfile:5"}},
		{"weights not 100", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nweights blue 90 green 20", []string{"weights must sum to 100 (they sum to 110)", "blue=90 green=20", "Caddyfile:5"}},
		{"percent out of range", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nflag f 101", []string{`flag f: percent "101"`, "0 to 100", "Caddyfile:5"}},
		{"percent three decimals", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nflag f 0.001", []string{`"0.001"`, "two decimals"}},
		{"duplicate pool", "pool blue 127.0.0.1:1\npool blue 127.0.0.1:2", []string{`duplicate pool "blue"`, "Caddyfile:4"}},
		{"pool without upstreams", "pool blue\npool green 127.0.0.1:2", []string{"pool blue has no upstreams", "Caddyfile:3"}},
		{"one pool", "pool blue 127.0.0.1:1", []string{"1 pool(s) declared", "at least two"}},
		{"bad upstream", "pool blue localhost\npool green 127.0.0.1:2", []string{`upstream "localhost"`, "host:port"}},
		{"weights odd args", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nweights blue", []string{"pool/percent pairs", `"blue"`}},
		{"weights unknown pool", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nweights blue 50 red 50", []string{"weights.red", "known pools: blue, green"}},
		{"live and weights", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nlive blue\nweights blue 50 green 50", []string{"'live' and 'weights' both given"}},
		{"bad sticky", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nsticky query uid", []string{"one of cookie, header, ip", `"query"`}},
		{"unknown setting", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\ncolour red", []string{`unknown switchback setting "colour"`, "accepted: pool, live, weights, sticky, flag, guard, retain, health_uri, health_interval, health_latency, proxy"}},
		{"bad health latency", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nhealth_uri /health\nhealth_latency 2m", []string{"health.latency", "2m0s", "1ms to 1m"}},
		{"health latency without uri", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nhealth_latency 500ms", []string{"without health_uri"}},
		{"upstream in proxy", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nproxy {\nto 127.0.0.1:3\n}", []string{"upstreams are set per pool"}},
		{"bad proxy option", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nproxy {\nlb_policy nonsense\n}", []string{"nonsense"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := ":8080 {\n\tswitchback checkout {\n" + tt.body + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("adapt succeeded, want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
