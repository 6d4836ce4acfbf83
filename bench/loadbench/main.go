// Command loadbench measures the gateway CPU each request costs through
// Switchback, against Caddy's plain reverse_proxy in the same binary, the
// backend reached directly, and nginx doing the same weighted, sticky split
// as the lean peer a user could pick instead:
//
//	go build -o bin/switchback ./cmd/switchback
//	go run ./bench/loadbench -bin bin/switchback
//
// It starts the example backend in this process and the servers under test
// as subprocesses: the gateway with two loopback sites, one per directive,
// and nginx (when installed) with a temporary prefix. With two CPUs or
// more, the servers are pinned to one CPU and this process (load generator
// and backend) to the others, so neither steals the other's core. Each
// target is warmed up and then sent -requests requests from -concurrency
// keep-alive workers, each request with its own X-User-ID; the targets take
// turns for -rounds rounds, in one order and then in the reverse, so that
// no target always runs first or right after another. Gateway CPU comes
// from the server's /proc/PID/task/*/schedstat, in nanoseconds, so the load
// generator's and the backend's CPU do not count; theirs is shown apart.
//
// The switchback row's ratio to reverse_proxy is taken within each round
// (the two ran back to back) and reported as the median over the rounds
// with a bootstrap 95% interval, against the goal: a median of at most 1.03
// with an upper bound of at most 1.05. Many short rounds resolve more than
// a few long ones of the same total: the pairing cancels drift in the
// machine's speed, and the interval narrows with the number of rounds.
//
// -only picks targets, e.g. -only direct,reverse_proxy while the gateway
// binary has no switchback directive; without -only, nginx is measured when
// it is installed and skipped with a note when not. -duration-max bounds
// each server's start-up and each run (warm-up plus measured requests) of
// each target. A run it cuts short is reported as partial and the exit
// status is 1, as it is when any request failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Target names, as -only takes them and the table prints them.
const (
	targetDirect       = "direct"
	targetNginx        = "nginx"
	targetReverseProxy = "reverse_proxy"
	targetSwitchback   = "switchback"
)

var allTargets = []string{targetDirect, targetNginx, targetReverseProxy, targetSwitchback}

// Bounds on the flags, so that a typo cannot start an unbounded run.
const (
	maxRequests    = 1_000_000
	maxConcurrency = 1024
	maxRounds      = 50
	maxDuration    = time.Hour
)

type config struct {
	bin         string
	nginx       string   // path; "" finds it on $PATH or in nginxDirs
	nginxDirs   []string // where to look for nginx after $PATH
	requests    int
	warmup      int
	concurrency int
	rounds      int
	durationMax time.Duration
	targets     []string
	// nginxOptional: nginx was not asked for by name, so a missing nginx
	// drops its row rather than failing the run.
	nginxOptional bool
	pin           bool
	json          bool
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
	fs.StringVar(&cfg.nginx, "nginx", "", "`path` of nginx; default: nginx on $PATH or in "+strings.Join(nginxDirs, ", "))
	cfg.nginxDirs = nginxDirs
	fs.IntVar(&cfg.requests, "requests", 10000, "measured requests per target and round")
	fs.IntVar(&cfg.warmup, "warmup", 2000, "unmeasured warm-up requests before each measured run")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "concurrent keep-alive workers")
	fs.IntVar(&cfg.rounds, "rounds", 20, "rounds, alternately in target order and in reverse; the table reports medians")
	fs.DurationVar(&cfg.durationMax, "duration-max", time.Minute, "hard bound on each server's start-up and on each run of each target")
	fs.StringVar(&only, "only", "", "comma-separated `targets` to measure: "+strings.Join(allTargets, ", ")+"; default: all, nginx when installed")
	fs.BoolVar(&cfg.pin, "pin", true, "pin the servers to one CPU and the load generator and backend to the others")
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
	if only == "" {
		cfg.targets, cfg.nginxOptional = slices.Clone(allTargets), true
		return cfg, nil
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
	var notes []string

	var plan *cpuPlan
	if cfg.pin {
		var why string
		if plan, why = planCPUs(); plan == nil {
			notes = append(notes, why)
		} else if err := plan.pinSelf(); err != nil {
			return err
		} else {
			notes = append(notes, plan.desc)
		}
	} else {
		notes = append(notes, "not pinned (-pin=false): load generator, backend and servers share the CPUs")
	}

	be, err := startBackend()
	if err != nil {
		return err
	}
	defer be.close()

	urls := map[string]string{targetDirect: be.url}
	servers := make(map[string]*server)
	if slices.Contains(cfg.targets, targetNginx) {
		bin, err := findNginx(cfg.nginx, cfg.nginxDirs)
		switch {
		case errors.Is(err, errNoNginx) && cfg.nginxOptional:
			notes = append(notes, "nginx not measured: "+err.Error())
			cfg.targets = slices.DeleteFunc(cfg.targets, func(t string) bool { return t == targetNginx })
		case err != nil:
			return err
		default:
			startCtx, cancel := context.WithTimeout(ctx, cfg.durationMax)
			ng, err := startNginx(startCtx, bin, be.addr, plan)
			cancel()
			if err != nil {
				return err
			}
			defer ng.stop()
			servers[targetNginx] = ng
		}
	}
	if slices.Contains(cfg.targets, targetReverseProxy) || slices.Contains(cfg.targets, targetSwitchback) {
		startCtx, cancel := context.WithTimeout(ctx, cfg.durationMax)
		gw, err := startGateway(startCtx, cfg.bin, be.addr, cfg.targets, plan)
		cancel()
		if err != nil {
			return err
		}
		defer gw.stop()
		for t := range gw.urls {
			servers[t] = gw
		}
	}
	for t, s := range servers {
		urls[t] = s.urls[t]
		if t == targetSwitchback || t == targetNginx {
			if err := checkRoutingHeaders(ctx, t, urls[t]); err != nil {
				fmt.Fprintln(stderr, "loadbench: note:", err)
				notes = append(notes, err.Error())
			}
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
		for _, t := range roundOrder(cfg.targets, round) {
			runCtx, cancel := context.WithTimeout(ctx, cfg.durationMax)
			m, err := measure(runCtx, cfg, clients[t], t, round, servers[t])
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

	rep := newReport(cfg, ms, notes, time.Since(started))
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

// roundOrder is the targets in their order in even rounds and in reverse
// in odd ones, so that of any two targets each runs first half the time,
// and the pair compared (reverse_proxy, switchback) runs A-B, then B-A.
func roundOrder(targets []string, round int) []string {
	order := slices.Clone(targets)
	if round%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

// measure warms a target up and then measures it once. srv is the server
// under test, nil for the backend reached directly.
func measure(ctx context.Context, cfg config, c *loadClient, target string, round int, srv *server) (measurement, error) {
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

	var srvBefore time.Duration
	if srv != nil {
		var err error
		if srvBefore, err = srv.cpu(); err != nil {
			return m, err
		}
	}
	selfBefore, selfErr := selfCPU()
	r := c.load(ctx, cfg.requests, cfg.concurrency)
	m.setLoad(r, cfg.requests)
	if selfAfter, err := selfCPU(); err == nil && selfErr == nil {
		m.LoadCPUUS = perRequest(selfAfter-selfBefore, m.Requests)
	}
	if srv != nil {
		srvAfter, err := srv.cpu()
		if err != nil {
			return m, err
		}
		m.GatewayCPUUS = perRequest(srvAfter-srvBefore, m.Requests)
	}
	if r.failed > 0 && r.failed == r.done {
		return m, fmt.Errorf("%s: all %d requests failed, the first with: %v", target, r.done, r.firstErr)
	}
	return m, nil
}
