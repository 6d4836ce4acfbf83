package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 7 and 5 ticks in every case.
	const rest = " S 1 2 3 4 5 6 7 8 9 10 7 5 0 0 20 0 9 0 100 1000 50"
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"plain name", "1234 (switchback)" + rest, 120 * time.Millisecond, false},
		{"name with spaces and parens", "1234 (a b) (c))" + rest, 120 * time.Millisecond, false},
		{"no name", "1234 switchback" + rest, 0, true},
		{"too short", "1234 (switchback) S 1 2 3", 0, true},
		{"not a number", "1234 (x) S 1 2 3 4 5 6 7 8 9 10 x 5", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU(tt.stat)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatCPU error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStatCPU = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseStatCPUSelf(t *testing.T) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if _, err := parseStatCPU(string(b)); err != nil {
		t.Error(err)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantTargets []string
		wantErr     string // substring; empty for success
	}{
		{"defaults", nil, []string{"direct", "nginx", "reverse_proxy", "switchback"}, ""},
		{"only, reordered, spaced", []string{"-only", "reverse_proxy, direct"}, []string{"direct", "reverse_proxy"}, ""},
		{"only nginx", []string{"-only", "switchback,nginx"}, []string{"nginx", "switchback"}, ""},
		{"only unknown", []string{"-only", "direct,caddy"}, nil, `unknown target "caddy"`},
		{"only empty", []string{"-only", ","}, nil, "names no target"},
		{"zero requests", []string{"-requests", "0"}, nil, "-requests 0 is out of range; want 1 to 1000000"},
		{"too many workers", []string{"-concurrency", "5000"}, nil, "-concurrency 5000 is out of range"},
		{"zero rounds", []string{"-rounds", "0"}, nil, "-rounds 0"},
		{"short duration", []string{"-duration-max", "10ms"}, nil, "-duration-max 10ms is out of range; want 1s to 1h0m0s"},
		{"arguments", []string{"extra"}, nil, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseFlags(tt.args, new(bytes.Buffer))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.targets, tt.wantTargets) {
				t.Errorf("targets = %q, want %q", cfg.targets, tt.wantTargets)
			}
			// Only the default list may drop a missing nginx.
			if want := tt.args == nil; cfg.nginxOptional != want {
				t.Errorf("nginxOptional = %v, want %v", cfg.nginxOptional, want)
			}
		})
	}
}

func TestCaddyfile(t *testing.T) {
	got := caddyfile("127.0.0.1:9001", map[string]int{targetReverseProxy: 8001, targetSwitchback: 8002})
	want := `{
	admin off
	auto_https off
	persist_config off
	default_bind 127.0.0.1
}

http://127.0.0.1:8001 {
	reverse_proxy 127.0.0.1:9001
}

http://127.0.0.1:8002 {
	switchback bench {
		pool blue 127.0.0.1:9001
		pool green 127.0.0.1:9001
		weights blue 50 green 50
		sticky header X-User-ID
		flag f1 10
		flag f2 50
	}
}
`
	if got != want {
		t.Errorf("caddyfile =\n%s\nwant\n%s", got, want)
	}
	if got := caddyfile("127.0.0.1:9001", map[string]int{targetReverseProxy: 8001}); strings.Contains(got, "switchback") {
		t.Errorf("caddyfile without the switchback target has a switchback site:\n%s", got)
	}
}

func TestStats(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var d []time.Duration
		for _, v := range vs {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	percentiles := []struct {
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
	}
	for _, tt := range percentiles {
		if got := percentile(tt.sorted, tt.q); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.q, got, tt.want)
		}
	}
	medians := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range medians {
		if got := median(slices.Clone(tt.in)); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	targets := []string{"a", "b", "c"}
	for round, want := range [][]string{{"a", "b", "c"}, {"c", "b", "a"}, {"a", "b", "c"}, {"c", "b", "a"}} {
		if got := roundOrder(targets, round); !slices.Equal(got, want) {
			t.Errorf("roundOrder(%q, %d) = %q, want %q", targets, round, got, want)
		}
	}
	if !slices.Equal(targets, []string{"a", "b", "c"}) {
		t.Errorf("roundOrder changed its argument to %q", targets)
	}
}

func TestCompare(t *testing.T) {
	cpu := func(v float64) *float64 { return &v }
	cfg := config{requests: 100, rounds: 3, targets: []string{targetReverseProxy, targetSwitchback}}
	// Within each round switchback costs 10%, 20% and 0% more; across
	// rounds the machine's speed changes, which the ratios must not see.
	ms := []measurement{
		{Target: targetReverseProxy, Round: 1, Complete: true, RPS: 1000, GatewayCPUUS: cpu(100)},
		{Target: targetSwitchback, Round: 1, Complete: true, RPS: 900, GatewayCPUUS: cpu(110)},
		{Target: targetSwitchback, Round: 2, Complete: true, RPS: 450, GatewayCPUUS: cpu(240)},
		{Target: targetReverseProxy, Round: 2, Complete: true, RPS: 500, GatewayCPUUS: cpu(200)},
		{Target: targetReverseProxy, Round: 3, Complete: true, RPS: 1000, GatewayCPUUS: cpu(50)},
		{Target: targetSwitchback, Round: 3, Complete: true, RPS: 1000, GatewayCPUUS: cpu(50)},
	}
	r := newReport(cfg, ms, []string{"a note"}, time.Second)
	if !r.Complete {
		t.Error("Complete = false, want true")
	}
	o := r.target(targetSwitchback).VsReverseProxy
	if o == nil {
		t.Fatal("switchback has no ratio to reverse_proxy")
	}
	if want := []float64{1.1, 1.2, 1}; len(o.PerRound) != 3 || !near(o.PerRound[0], want[0]) || !near(o.PerRound[1], want[1]) || !near(o.PerRound[2], want[2]) {
		t.Errorf("per round = %v, want %v", o.PerRound, want)
	}
	if !near(o.Median, 1.1) || o.Low > o.Median || o.High < o.Median || o.Low < 1 || o.High > 1.2 {
		t.Errorf("ratio = %.3f [%.3f, %.3f], want median 1.1 inside an interval within [1, 1.2]", o.Median, o.Low, o.High)
	}
	if o.Verdict != "missed" && o.Verdict != "undecided" {
		t.Errorf("verdict %q for a median of 1.1", o.Verdict)
	}
	if r.target(targetReverseProxy).VsReverseProxy != nil {
		t.Error("reverse_proxy compared with itself")
	}

	var table bytes.Buffer
	if err := r.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.100 [", "round by round: 1.100 1.200 1.000", "goal median ≤ 1.03 and upper bound ≤ 1.05", "a note"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, &table)
		}
	}
}

func TestBootstrapMedianCI(t *testing.T) {
	tests := []struct {
		name   string
		xs     []float64
		lo, hi float64 // the interval must lie within these
	}{
		{"all equal", []float64{1.02, 1.02, 1.02, 1.02}, 1.02, 1.02},
		{"one value", []float64{0.97}, 0.97, 0.97},
		{"spread", []float64{0.95, 0.99, 1.00, 1.01, 1.02, 1.03, 1.04, 1.05, 1.10, 1.30}, 0.95, 1.30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := bootstrapMedianCI(tt.xs, 2000)
			med := median(slices.Clone(tt.xs))
			if lo > med || hi < med || lo < tt.lo || hi > tt.hi {
				t.Errorf("interval [%v, %v] around median %v, want it within [%v, %v] and around the median", lo, hi, med, tt.lo, tt.hi)
			}
			if lo2, hi2 := bootstrapMedianCI(tt.xs, 2000); lo2 != lo || hi2 != hi {
				t.Errorf("a second call gave [%v, %v], first [%v, %v]; want the same", lo2, hi2, lo, hi)
			}
		})
	}
	// Ten rounds that barely vary pin the median down to well inside the
	// 2% the goal leaves between its median and its upper bound.
	tight := []float64{1.010, 1.012, 1.008, 1.011, 1.009, 1.013, 1.010, 1.007, 1.012, 1.011}
	if lo, hi := bootstrapMedianCI(tight, bootstrapResamples); hi-lo > 0.01 {
		t.Errorf("interval [%v, %v] of ten tight rounds is wider than 0.01", lo, hi)
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		r    ratio
		want string
	}{
		{ratio{Median: 1.01, Low: 0.99, High: 1.04}, "met"},
		{ratio{Median: 1.03, Low: 1.00, High: 1.05}, "met"},
		{ratio{Median: 1.02, Low: 0.95, High: 1.08}, "undecided"},
		{ratio{Median: 1.04, Low: 1.01, High: 1.06}, "undecided"},
		{ratio{Median: 1.09, Low: 1.05, High: 1.12}, "missed"},
	}
	for _, tt := range tests {
		if got := verdict(&tt.r); got != tt.want {
			t.Errorf("verdict(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	if got, err := parseSchedstat("385150502 235383471 113\n"); err != nil || got != 385150502*time.Nanosecond {
		t.Errorf("parseSchedstat = %v, %v; want 385.150502ms", got, err)
	}
	if _, err := parseSchedstat("x 1 2"); err == nil {
		t.Error("parseSchedstat of garbage succeeded")
	}
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

// quickConfig is a run small enough for a unit test, unpinned: pinning
// is tested on its own.
func quickConfig(targets ...string) config {
	return config{
		bin:         "bin/switchback",
		requests:    300,
		warmup:      50,
		concurrency: 4,
		rounds:      2,
		durationMax: 20 * time.Second,
		targets:     targets,
	}
}

func TestRunDirect(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(map[bool]string{false: "table", true: "json"}[asJSON], func(t *testing.T) {
			cfg := quickConfig(targetDirect)
			cfg.json = asJSON
			var out, progress bytes.Buffer
			if err := run(t.Context(), cfg, &out, &progress); err != nil {
				t.Fatalf("run: %v\nprogress:\n%s", err, &progress)
			}
			if !asJSON {
				if !strings.Contains(out.String(), "gateway CPU µs/req") || !strings.Contains(out.String(), "\ndirect ") {
					t.Errorf("table lacks the header or the direct row:\n%s", &out)
				}
				return
			}
			var rep report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("decode JSON: %v\n%s", err, &out)
			}
			if len(rep.Targets) != 1 {
				t.Fatalf("%d targets, want 1", len(rep.Targets))
			}
			d := rep.Targets[0]
			if d.Runs != 2 || d.Failed != 0 || d.RPS <= 0 || d.GatewayCPUUS != nil || !rep.Complete {
				t.Errorf("direct = %+v, complete %v; want 2 complete runs, no failures, no gateway CPU", d, rep.Complete)
			}
		})
	}
}

func TestRunDurationMax(t *testing.T) {
	cfg := quickConfig(targetDirect)
	cfg.requests, cfg.warmup, cfg.rounds, cfg.durationMax = maxRequests, 0, 1, time.Second
	var out, progress bytes.Buffer
	start := time.Now()
	err := run(t.Context(), cfg, &out, &progress)
	if !errors.Is(err, errIncomplete) {
		t.Fatalf("run error = %v, want errIncomplete", err)
	}
	if took := time.Since(start); took > cfg.durationMax+requestTimeout {
		t.Errorf("run took %v with -duration-max %v", took, cfg.durationMax)
	}
	if !strings.Contains(out.String(), "direct round 1 is partial") {
		t.Errorf("table does not mark the partial run:\n%s", &out)
	}
}

// fakeGateway writes a shell script to stand in for the gateway binary.
func fakeGateway(t *testing.T, script string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fake-switchback")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestRunGatewayFails(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		bin     string // overrides script
		wantErr []string
	}{
		{
			name:    "no binary",
			bin:     "does/not/exist",
			wantErr: []string{"does/not/exist", "go build -o bin/switchback ./cmd/switchback"},
		},
		{
			name:    "no switchback directive",
			script:  `echo 'Error: adapting config using caddyfile: Caddyfile:12: unrecognized directive: switchback' >&2; exit 1`,
			wantErr: []string{"gateway exited early", "-only direct,reverse_proxy", "Caddyfile:12"},
		},
		{
			name:    "never ready",
			script:  `echo "pid $$"; exec sleep 60`,
			wantErr: []string{"not ready", "deadline exceeded", "pid "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			cfg := quickConfig(targetDirect, targetReverseProxy, targetSwitchback)
			cfg.durationMax = time.Second
			cfg.bin = tt.bin
			if cfg.bin == "" {
				cfg.bin = fakeGateway(t, tt.script)
			}
			var out, progress bytes.Buffer
			err := run(t.Context(), cfg, &out, &progress)
			if err == nil {
				t.Fatal("run succeeded, want an error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error = %v\nwant it to mention %q", err, s)
				}
			}
			if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
				t.Errorf("temporary files left behind: %v", entries)
			}
			// The fake gateway printed its pid; it must be gone.
			if _, pid, ok := strings.Cut(err.Error(), "pid "); ok {
				pid, _, _ = strings.Cut(pid, "\n")
				var n int
				if _, scanErr := fmt.Sscan(pid, &n); scanErr == nil && syscall.Kill(n, 0) == nil {
					t.Errorf("gateway process %d still running", n)
				}
			}
		})
	}
}

// TestRunGateway runs against a real gateway binary: the one named by
// $LOADBENCH_BIN, or bin/switchback at the repository root once built.
func TestRunGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway")
	}
	bin := os.Getenv("LOADBENCH_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "switchback")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no gateway binary (%v); go build -o bin/switchback ./cmd/switchback", err)
	}
	tests := []struct {
		name    string
		targets []string
		pin     bool
	}{
		{"reverse_proxy", []string{targetDirect, targetReverseProxy}, false},
		{"switchback", []string{targetReverseProxy, targetSwitchback}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			cfg := quickConfig(tt.targets...)
			cfg.bin = bin
			cfg.pin = tt.pin
			cfg.json = true
			var out, progress bytes.Buffer
			err := run(t.Context(), cfg, &out, &progress)
			if err != nil && strings.Contains(err.Error(), "no switchback directive") {
				t.Skip("this gateway binary has no switchback directive yet")
			}
			if err != nil {
				t.Fatalf("run: %v\nprogress:\n%s", err, &progress)
			}
			var rep report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("decode JSON: %v\n%s", err, &out)
			}
			for _, s := range rep.Targets {
				if s.Runs != cfg.rounds || s.Failed != 0 {
					t.Errorf("%s: %d runs, %d failed; want %d runs, none failed", s.Target, s.Runs, s.Failed, cfg.rounds)
				}
				if (s.GatewayCPUUS != nil) != (s.Target != targetDirect) {
					t.Errorf("%s: gateway CPU %v, want it for gateway targets only", s.Target, s.GatewayCPUUS)
				}
			}
			if slices.Contains(tt.targets, targetSwitchback) && rep.target(targetSwitchback).VsReverseProxy == nil {
				t.Error("switchback row has no comparison with reverse_proxy")
			}
			if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
				t.Errorf("temporary files left behind: %v", entries)
			}
		})
	}
}

// TestNginxConf has nginx itself check the configuration of the lean peer.
func TestNginxConf(t *testing.T) {
	bin, err := findNginx("", nginxDirs)
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, "127.0.0.1:9", 8)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir+"/", "-c", conf, "-e", "stderr").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// TestRunNginx measures a real nginx, started in a temporary prefix and
// stopped again, beside the backend reached directly.
func TestRunNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx")
	}
	if _, err := findNginx("", nginxDirs); err != nil {
		t.Skip(err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cfg := quickConfig(targetDirect, targetNginx)
	cfg.nginxDirs = nginxDirs
	cfg.json = true
	var out, progress bytes.Buffer
	if err := run(t.Context(), cfg, &out, &progress); err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, &progress)
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, &out)
	}
	ng := rep.target(targetNginx)
	if ng == nil || ng.Runs != cfg.rounds || ng.Failed != 0 || ng.GatewayCPUUS == nil || *ng.GatewayCPUUS <= 0 {
		t.Errorf("nginx = %+v; want %d runs, none failed, and its CPU", ng, cfg.rounds)
	}
	for _, n := range rep.Notes {
		if strings.Contains(n, "routing") {
			t.Errorf("nginx does not pass the decision upstream: %s", n)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// TestNginxOptional: without -only, a missing nginx drops its row with a
// note; asked for by name, it is an error.
func TestNginxOptional(t *testing.T) {
	cfg := quickConfig(targetDirect, targetNginx)
	cfg.nginx = filepath.Join(t.TempDir(), "no-nginx")
	var out, progress bytes.Buffer
	if err := run(t.Context(), cfg, &out, &progress); err == nil || !strings.Contains(err.Error(), "-nginx") {
		t.Errorf("run with a missing -nginx: %v, want an error naming -nginx", err)
	}
	cfg = quickConfig(targetDirect, targetNginx)
	cfg.nginxDirs = []string{t.TempDir()}
	t.Setenv("PATH", t.TempDir())
	if err := run(t.Context(), cfg, &out, &progress); !errors.Is(err, errNoNginx) {
		t.Errorf("run with nginx asked for by name and missing: %v, want errNoNginx", err)
	}

	t.Setenv("PATH", t.TempDir())
	cfg = quickConfig(targetDirect, targetNginx)
	cfg.nginxDirs = []string{t.TempDir()}
	cfg.nginxOptional = true
	cfg.json = true
	out.Reset()
	if err := run(t.Context(), cfg, &out, &progress); err != nil {
		t.Fatalf("run: %v", err)
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, &out)
	}
	noted := slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.HasPrefix(n, "nginx not measured") })
	if rep.target(targetNginx) != nil || rep.target(targetDirect) == nil || !noted {
		t.Errorf("want the direct row, no nginx row and a note saying so:\n%s", &out)
	}
}
