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
		{"unknown setting", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\ncolour red", []string{`unknown switchback setting "colour"`, "accepted: pool, live, weights, sticky, flag, guard, retain, environment, health_uri, health_interval, health_latency, proxy"}},
		{"unknown environment", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nenvironment prod", []string{`environment "prod"`, "production, staging, development, test", "Caddyfile:5"}},
		{"bad health latency", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nhealth_uri /health\nhealth_latency 2m", []string{"health.latency", "2m0s", "1ms to 1m"}},
		{"health latency without uri", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nhealth_latency 500ms", []string{"without health_uri"}},
		{"upstream in proxy", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nproxy {\nto 127.0.0.1:3\n}", []string{"upstreams are set per pool"}},
		{"bad proxy option", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nproxy {\nlb_policy nonsense\n}", []string{"nonsense"}},
		{"placeholder upstream", "pool blue {http.request.header.X-Evil}:9001\npool green 127.0.0.1:2", []string{`upstream "{http.request.header.X-Evil}:9001"`, "placeholders", "want host:port", "Caddyfile:3"}},
		{"live twice", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nlive blue\nlive green", []string{"live given twice (first at Caddyfile:5)", "Caddyfile:6"}},
		{"weights leave a pool out", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nweights blue 100", []string{"weights: blue=100", "missing: green", "Caddyfile:5"}},
		{"window 0s", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nguard {\nerror_rate 5%\nwindow 0s\n}", []string{`window "0s": want a positive duration`, "Caddyfile:7"}},
		{"health_interval 0s", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nhealth_uri /health\nhealth_interval 0s", []string{`health_interval "0s": want a positive duration`, "Caddyfile:6"}},
		{"retain 0s", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nretain 0s", []string{`retain "0s": want a positive duration`, "Caddyfile:5"}},
		{"min_requests 0", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nguard {\nerror_rate 5%\nmin_requests 0\n}", []string{`min_requests "0": want a whole number, 1 or more`, "Caddyfile:7"}},
		{"sticky twice", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nsticky ip\nsticky cookie", []string{"sticky given twice (first at Caddyfile:5)", "Caddyfile:6"}},
		{"retain twice", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nretain 1h\nretain 2h", []string{"retain given twice", "Caddyfile:6"}},
		{"health_uri twice", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nhealth_uri /a\nhealth_uri /b", []string{"health_uri given twice", "Caddyfile:6"}},
		{"weights twice", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nweights blue 100 green 0\nweights blue 0 green 100", []string{"weights given twice", "Caddyfile:6"}},
		{"release twice", "pool blue 127.0.0.1:1 {\nrelease v1\nrelease v2\n}\npool green 127.0.0.1:2", []string{"release given twice (first at Caddyfile:4)", "Caddyfile:5"}},
		{"guard setting twice", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nguard {\nerror_rate 5%\nerror_rate 1%\n}", []string{"error_rate given twice", "Caddyfile:7"}},
		{"guard twice", "pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nguard {\nerror_rate 5%\n}\nguard {\np95 1s\n}", []string{"guard given twice", "Caddyfile:8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantAdaptError(t, ":8080 {\n\tswitchback checkout {\n"+tt.body+"\n\t}\n}\n", tt.want)
		})
	}
}

// wantAdaptError adapts a Caddyfile named Caddyfile and wants an error
// that mentions every string of want.
func wantAdaptError(t *testing.T, src string, want []string) {
	t.Helper()
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err == nil {
		t.Fatalf("adapt succeeded, want an error mentioning %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// TestCaddyfileRefusesRepeats: a setting or a deployment given twice is
// refused at the second place, naming the first, instead of the last one
// silently winning (or, for a deployment, two sites sharing one document).
func TestCaddyfileRefusesRepeats(t *testing.T) {
	const site = "\tswitchback checkout {\n\t\tpool blue 127.0.0.1:1\n\t\tpool green 127.0.0.1:2\n\t}\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"deployment in two sites", ":8080 {\n" + site + "}\n:8081 {\n" + site + "}\n",
			[]string{`deployment "checkout" already declared at Caddyfile:2`, "Caddyfile:8"}},
		{"deployment twice in one site", ":8080 {\nhandle /a {\n" + site + "}\nhandle /b {\n" + site + "}\n}\n",
			[]string{`deployment "checkout" already declared at Caddyfile:3`, "Caddyfile:9"}},
		{"state_dir twice", "{\n\tswitchback {\n\t\tstate_dir /a\n\t\tstate_dir /b\n\t}\n}\n:8080 {\n" + site + "}\n",
			[]string{"state_dir given twice (first at Caddyfile:3)", "Caddyfile:4"}},
		{"admin twice", "{\n\tswitchback {\n\t\tadmin off\n\t\tadmin 127.0.0.1:0\n\t}\n}\n:8080 {\n" + site + "}\n",
			[]string{"admin given twice", "Caddyfile:4"}},
		{"prefix global and in store", "{\n\tswitchback {\n\t\tstore etcd 127.0.0.1:2379 {\n\t\t\tprefix /a\n\t\t}\n\t\tprefix /b\n\t}\n}\n:8080 {\n" + site + "}\n",
			[]string{"prefix given twice", "Caddyfile:6"}},
		{"store setting twice", "{\n\tswitchback {\n\t\tstore etcd 127.0.0.1:2379 {\n\t\t\tusername a\n\t\t\tusername b\n\t\t}\n\t}\n}\n:8080 {\n" + site + "}\n",
			[]string{"username given twice", "Caddyfile:5"}},
		{"global option twice", "{\n\tswitchback {\n\t\tadmin off\n\t}\n\tswitchback {\n\t\tstate_dir /a\n\t}\n}\n:8080 {\n" + site + "}\n",
			[]string{"switchback global option given twice", "Caddyfile:5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantAdaptError(t, tt.src, tt.want)
		})
	}
}

// TestCaddyfileOneSiteManyAddresses: one site block with several addresses
// declares its deployment once, so it is accepted.
func TestCaddyfileOneSiteManyAddresses(t *testing.T) {
	src := ":8080, :8081 {\n\tswitchback checkout {\n\t\tpool blue 127.0.0.1:1\n\t\tpool green 127.0.0.1:2\n\t}\n}\n"
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"}); err != nil {
		t.Fatalf("adapt: %v", err)
	}
}
