package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
		{"defaults", nil, []string{"direct", "reverse_proxy", "switchback"}, ""},
		{"only, reordered, spaced", []string{"-only", "reverse_proxy, direct"}, []string{"direct", "reverse_proxy"}, ""},
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
	for round, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		if got := rotate(targets, round); !slices.Equal(got, want) {
			t.Errorf("rotate(%q, %d) = %q, want %q", targets, round, got, want)
		}
	}
}

func TestCompare(t *testing.T) {
	cpu := func(v float64) *float64 { return &v }
	cfg := config{requests: 100, rounds: 3, targets: []string{targetReverseProxy, targetSwitchback}}
	ms := []measurement{
		{Target: targetReverseProxy, Round: 1, Complete: true, RPS: 1000, GatewayCPUUS: cpu(100)},
		{Target: targetSwitchback, Round: 1, Complete: true, RPS: 900, GatewayCPUUS: cpu(110)},
		{Target: targetReverseProxy, Round: 2, Complete: true, RPS: 500, GatewayCPUUS: cpu(200)},
		{Target: targetSwitchback, Round: 2, Complete: true, RPS: 450, GatewayCPUUS: cpu(220)},
		{Target: targetSwitchback, Round: 3, Complete: true, RPS: 1000, GatewayCPUUS: cpu(100)},
		{Target: targetReverseProxy, Round: 3, Complete: true, RPS: 1000, GatewayCPUUS: cpu(100)},
	}
	r := newReport(cfg, ms, time.Second)
	if !r.Complete {
		t.Error("Complete = false, want true")
	}
	o := r.target(targetSwitchback).VsReverseProxy
	if o == nil || o.CPUPct == nil {
		t.Fatalf("VsReverseProxy = %+v, want CPU and req/s", o)
	}
	// Medians: reverse_proxy 1000 req/s and 100µs, switchback 900 and 110.
	if !near(*o.CPUPct, 10) || !near(o.RPSPct, -10) {
		t.Errorf("VsReverseProxy = %+.2f%% CPU, %+.2f%% req/s; want +10%%, -10%%", *o.CPUPct, o.RPSPct)
	}
	wantRPS := []float64{-10, -10, 0}
	if len(o.PerRound) != len(wantRPS) {
		t.Fatalf("%d rounds compared, want %d", len(o.PerRound), len(wantRPS))
	}
	for i, rc := range o.PerRound {
		if rc.Round != i+1 || !near(rc.RPSPct, wantRPS[i]) {
			t.Errorf("round %d: %+.2f%% req/s, want round %d %+.0f%%", rc.Round, rc.RPSPct, i+1, wantRPS[i])
		}
	}

	var table bytes.Buffer
	if err := r.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+10.0% CPU, -10.0% req/s", "CPU +10.0% +10.0% +0.0%; req/s -10.0% -10.0% +0.0%"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, &table)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

// quickConfig is a run small enough for a unit test.
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
	}{
		{"reverse_proxy", []string{targetDirect, targetReverseProxy}},
		{"switchback", []string{targetReverseProxy, targetSwitchback}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			cfg := quickConfig(tt.targets...)
			cfg.bin = bin
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
