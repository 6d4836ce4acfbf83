// Command loadbench measures what the switchback directive costs on top of
// Caddy's plain reverse_proxy, in one invocation and with one gateway
// binary, so that the two differ only in the directive under test:
//
//	go build -o bin/switchback ./cmd/switchback
//	go run ./bench/loadbench -bin bin/switchback
//
// It starts the example backend in this process and the gateway as a
// subprocess with two loopback sites, one per directive. Each target (the
// backend directly, reverse_proxy, switchback) is warmed up and then sent
// -requests requests from -concurrency keep-alive workers, each request with
// its own X-User-ID. The targets take turns for -rounds rounds and the
// table reports the median of each figure, because the load generator, the
// backend and the gateway share the machine's cores and any one run is
// noisy. Gateway CPU comes from /proc/PID/stat of the subprocess, so the
// load generator's and the backend's CPU do not count.
//
// -only picks targets, e.g. -only direct,reverse_proxy while the gateway
// binary has no switchback directive. -duration-max bounds the gateway's
// start-up and each run (warm-up plus measured requests) of each target, so
// the whole invocation ends within (1 + rounds × targets) × -duration-max.
// A run it cuts short is reported as partial and the exit status is 1, as
// it is when any request failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Target names, as -only takes them and the table prints them.
const (
	targetDirect       = "direct"
	targetReverseProxy = "reverse_proxy"
	targetSwitchback   = "switchback"
)

var allTargets = []string{targetDirect, targetReverseProxy, targetSwitchback}

// Bounds on the flags, so that a typo cannot start an unbounded run.
const (
	maxRequests    = 1_000_000
	maxConcurrency = 1024
	maxRounds      = 15
	maxDuration    = time.Hour
)

type config struct {
	bin         string
	requests    int
	warmup      int
	concurrency int
	rounds      int
	durationMax time.Duration
	targets     []string
	json        bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var only string
	fs.StringVar(&cfg.bin, "bin", "bin/switchback", "`path` of the gateway binary (Caddy with the Switchback modules)")
	fs.IntVar(&cfg.requests, "requests", 20000, "measured requests per target and round")
	fs.IntVar(&cfg.warmup, "warmup", 1000, "unmeasured warm-up requests before each measured run")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "concurrent keep-alive workers")
	fs.IntVar(&cfg.rounds, "rounds", 3, "interleaved rounds; the table reports medians")
	fs.DurationVar(&cfg.durationMax, "duration-max", 30*time.Second, "hard bound on the gateway's start-up and on each run of each target")
	fs.StringVar(&only, "only", strings.Join(allTargets, ","), "comma-separated `targets` to measure: "+strings.Join(allTargets, ", "))
	fs.BoolVar(&cfg.json, "json", false, "print the results as JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q; loadbench takes only flags", fs.Args())
	}

	ints := []struct {
		name     string
		v        int
		min, max int
	}{
		{"requests", cfg.requests, 1, maxRequests},
		{"warmup", cfg.warmup, 0, maxRequests},
		{"concurrency", cfg.concurrency, 1, maxConcurrency},
		{"rounds", cfg.rounds, 1, maxRounds},
	}
	for _, f := range ints {
		if f.v < f.min || f.v > f.max {
			return config{}, fmt.Errorf("-%s %d is out of range; want %d to %d", f.name, f.v, f.min, f.max)
		}
	}
	if cfg.durationMax < time.Second || cfg.durationMax > maxDuration {
		return config{}, fmt.Errorf("-duration-max %v is out of range; want 1s to %v", cfg.durationMax, maxDuration)
	}
	targets, err := parseTargets(only)
	if err != nil {
		return config{}, err
	}
	cfg.targets = targets
	return cfg, nil
}

// parseTargets parses -only, returning the targets in table order.
func parseTargets(only string) ([]string, error) {
	var picked []string
	for t := range strings.SplitSeq(only, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(allTargets, t) {
			return nil, fmt.Errorf("-only: unknown target %q; want a comma-separated list of %s", t, strings.Join(allTargets, ", "))
		}
		picked = append(picked, t)
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("-only %q names no target; want a comma-separated list of %s", only, strings.Join(allTargets, ", "))
	}
	var targets []string
	for _, t := range allTargets {
		if slices.Contains(picked, t) {
			targets = append(targets, t)
		}
	}
	return targets, nil
}

// errIncomplete means the results were printed but should not be trusted
// as they are: a run was cut short or requests failed.
var errIncomplete = errors.New("results incomplete")

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	started := time.Now()

	be, err := startBackend()
	if err != nil {
		return err
	}
	defer be.close()

	urls := map[string]string{targetDirect: be.url}
	var gw *gateway
	if slices.Contains(cfg.targets, targetReverseProxy) || slices.Contains(cfg.targets, targetSwitchback) {
		startCtx, cancel := context.WithTimeout(ctx, cfg.durationMax)
		gw, err = startGateway(startCtx, cfg.bin, be.addr, cfg.targets)
		if err == nil && slices.Contains(cfg.targets, targetSwitchback) {
			if err := checkSwitchbackHeaders(startCtx, gw.urls[targetSwitchback]); err != nil {
				fmt.Fprintln(stderr, "loadbench: note:", err)
			}
		}
		cancel()
		if err != nil {
			return err
		}
		defer gw.stop()
		for t, u := range gw.urls {
			urls[t] = u
		}
	}

	clients := make(map[string]*loadClient, len(cfg.targets))
	for _, t := range cfg.targets {
		clients[t] = newLoadClient(urls[t], cfg.concurrency)
		defer clients[t].close()
	}

	var ms []measurement
	cutShort := false
rounds:
	for round := range cfg.rounds {
		for _, t := range rotate(cfg.targets, round) {
			runCtx, cancel := context.WithTimeout(ctx, cfg.durationMax)
			m, err := measure(runCtx, cfg, clients[t], t, round, gw)
			cancel()
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				break rounds
			}
			if !m.Complete {
				cutShort = true
			}
			if m.Requests > 0 {
				ms = append(ms, m)
				fmt.Fprintf(stderr, "round %d/%d %-13s %s\n", round+1, cfg.rounds, t, m.summary())
			} else {
				fmt.Fprintf(stderr, "round %d/%d %-13s no measured request within -duration-max %v\n", round+1, cfg.rounds, t, cfg.durationMax)
			}
		}
	}

	rep := newReport(cfg, ms, time.Since(started))
	if cfg.json {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}

	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: interrupted", errIncomplete)
	case cutShort:
		return fmt.Errorf("%w: -duration-max %v cut runs short; raise it or lower -requests", errIncomplete, cfg.durationMax)
	case rep.failed() > 0:
		return fmt.Errorf("%w: %d requests failed, so the targets are not comparable", errIncomplete, rep.failed())
	}
	return nil
}

// rotate returns targets starting at position round, so that no target is
// always measured first or last in a round.
func rotate(targets []string, round int) []string {
	k := round % len(targets)
	return append(slices.Clone(targets[k:]), targets[:k]...)
}

// measure warms a target up and then measures it once.
func measure(ctx context.Context, cfg config, c *loadClient, target string, round int, gw *gateway) (measurement, error) {
	m := measurement{Target: target, Round: round + 1}
	if cfg.warmup > 0 {
		w := c.load(ctx, cfg.warmup, cfg.concurrency)
		if ctx.Err() != nil {
			return m, nil
		}
		if w.done > 0 && w.failed == w.done {
			return m, fmt.Errorf("%s: all %d warm-up requests failed, the first with: %v", target, w.done, w.firstErr)
		}
	}

	usesGateway := target != targetDirect
	var cpuBefore time.Duration
	if usesGateway {
		var err error
		if cpuBefore, err = gw.cpu(); err != nil {
			return m, err
		}
	}
	r := c.load(ctx, cfg.requests, cfg.concurrency)
	m.setLoad(r, cfg.requests)
	if usesGateway {
		cpuAfter, err := gw.cpu()
		if err != nil {
			return m, err
		}
		m.setGatewayCPU(cpuAfter - cpuBefore)
	}
	if r.failed > 0 && r.failed == r.done {
		return m, fmt.Errorf("%s: all %d requests failed, the first with: %v", target, r.done, r.firstErr)
	}
	return m, nil
}

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }
