// Command soak runs three gateways on one embedded etcd, on 127.0.0.1,
// under steady load with the changes of a busy day: flips every few
// seconds, flag changes and deletions, pool upstream changes, a guard
// fallback every minute (the example backend's fault injection) and SSE
// clients coming and going. Every 10 s it samples each gateway's RSS,
// goroutines, open file descriptors and metric series, and the etcd key
// count; at the end it prints them and fails when one keeps growing after
// the warm-up: a trend (Theil–Sen, of the per-minute floors) that projects
// more than 10% growth per hour.
//
//	go run ./soak -duration 30m     # make soak SOAK=30m
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/examples/backend"
	"github.com/a8e2c47e/switchback/gateway"
)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to soak (at most 2h)")
	interval := flag.Duration("interval", 10*time.Second, "time between samples")
	warmup := flag.Duration("warmup", 0, "samples ignored by the growth check (default: a fifth of the duration, at least 1m)")
	rps := flag.Int("rps", 150, "requests per second across the gateways (at most 1000)")
	maxGrowth := flag.Float64("max-growth", 10, "largest projected growth per hour, in percent, that passes")
	flag.Parse()
	*duration = min(*duration, 2*time.Hour)
	*rps = max(1, min(*rps, 1000))
	if *warmup == 0 {
		*warmup = max(time.Minute, *duration/5)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := soak(ctx, config{duration: *duration, interval: *interval, warmup: *warmup, rps: *rps, maxGrowth: *maxGrowth}); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type config struct {
	duration, interval, warmup time.Duration
	rps                        int
	maxGrowth                  float64
}

func soak(ctx context.Context, cfg config) error {
	dir, err := os.MkdirTemp("", "switchback-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "switchback")
	fmt.Println("building the gateway")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/switchback").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}

	etcd, err := configstore.StartEmbedded(filepath.Join(dir, "etcd"), "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, err := etcd.Client()
	if err != nil {
		return err
	}
	defer cli.Close()

	blue := httptest.NewServer(backend.New("blue", "v1"))
	defer blue.Close()
	greens := []*httptest.Server{httptest.NewServer(backend.New("green", "v2")), httptest.NewServer(backend.New("green", "v2"))}
	for _, g := range greens {
		defer g.Close()
	}

	var gws []*gatewayProc
	defer func() {
		for _, g := range gws {
			g.stop()
		}
	}()
	for i := range 3 {
		g, err := startGateway(ctx, bin, dir, fmt.Sprintf("soak-%d", i), etcd.Endpoints()[0], hostport(blue), hostport(greens[0]))
		if err != nil {
			return err
		}
		gws = append(gws, g)
	}
	fmt.Printf("3 gateways on etcd %s; soaking for %s, sampling every %s, warm-up %s\n", etcd.Endpoints()[0], cfg.duration, cfg.interval, cfg.warmup)

	runCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var (
		wg    sync.WaitGroup
		stats counters
	)
	wg.Go(func() { load(runCtx, gws, cfg.rps, &stats) })
	wg.Go(func() { changes(runCtx, gws, greens, &stats) })
	wg.Go(func() { sseClients(runCtx, gws, &stats) })

	var (
		samples []sample
		// stacks holds each gateway's goroutines by stack after the
		// warm-up, to say which grew if the count does.
		stacks []map[string]int
	)
	tick := time.NewTicker(cfg.interval)
	start := time.Now()
	for done := false; !done; {
		if stacks == nil && time.Since(start) >= cfg.warmup {
			stacks = goroutineStacks(runCtx, gws)
		}
		s, err := take(runCtx, time.Since(start), gws, cli)
		if err != nil && runCtx.Err() == nil {
			fmt.Fprintln(os.Stderr, "sample:", err)
		}
		if err == nil {
			samples = append(samples, s)
			fmt.Println(s.line())
		}
		select {
		case <-runCtx.Done():
			done = true
		case <-tick.C:
		}
	}
	tick.Stop()
	end := goroutineStacks(ctx, gws)
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, g := range gws {
		if g.exited() {
			return fmt.Errorf("gateway %s exited during the soak:\n%s", g.name, tail(g.out.String(), 3000))
		}
	}
	fmt.Printf("\nrequests %d (transport errors %d, 5xx %d during fault drills and flips), flips %d, flag changes %d, pool changes %d, fallbacks %d, SSE clients %d, change errors %d\n\n",
		stats.requests.Load(), stats.transportErrs.Load(), stats.status5xx.Load(), stats.flips.Load(), stats.flags.Load(),
		stats.pools.Load(), stats.fallbacks.Load(), stats.sse.Load(), stats.changeErrs.Load())
	err = report(os.Stdout, samples, cfg)
	if err != nil && stacks != nil {
		for i, g := range gws {
			printGrowth(os.Stdout, g.name, stacks[i], end[i])
		}
	}
	return err
}

// goroutineStacks reads each gateway's goroutines, counted by stack
// (pprof's debug=1 form), from Caddy's admin endpoint.
func goroutineStacks(ctx context.Context, gws []*gatewayProc) []map[string]int {
	out := make([]map[string]int, len(gws))
	for i, g := range gws {
		out[i] = map[string]int{}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.caddyAdmin+"/debug/pprof/goroutine?debug=1", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Records are separated by blank lines; each starts with
		// "N @ addrs" followed by the frames.
		for rec := range strings.SplitSeq(string(body), "\n\n") {
			head, frames, ok := strings.Cut(rec, "\n")
			n, _, ok2 := strings.Cut(head, " @ ")
			count, err := strconv.Atoi(n)
			if !ok || !ok2 || err != nil {
				continue
			}
			out[i][frames] += count
		}
	}
	return out
}

// printGrowth prints the stacks with more goroutines at the end than
// after the warm-up.
func printGrowth(w io.Writer, name string, before, after map[string]int) {
	for stack, n := range after {
		if d := n - before[stack]; d > 0 {
			fmt.Fprintf(w, "\n%s: %d more goroutines (%d -> %d) at\n%s\n", name, d, before[stack], n, tail(stack, 1500))
		}
	}
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// gatewayProc is one switchback process.
type gatewayProc struct {
	name, base, adminURL string
	// caddyAdmin is Caddy's own admin endpoint, for /debug/pprof.
	caddyAdmin string
	cmd        *exec.Cmd
	out        *lockedBuffer
	done       chan struct{}
	admin      *admin.Client
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

// Write keeps the last 64 KiB: enough to say why a gateway died, bounded
// over an hour of logs.
func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 64<<10 {
		l.b = append(l.b[:0], l.b[len(l.b)-32<<10:]...)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func startGateway(ctx context.Context, bin, root, name, etcdURL, blue, green string) (*gatewayProc, error) {
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	aport, err := freePort()
	if err != nil {
		return nil, err
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	default_bind 127.0.0.1
	switchback {
		store etcd %s
		admin 127.0.0.1:%d
		instance %s
		state_dir %s
	}
}

http://127.0.0.1:%d {
	switchback checkout {
		pool blue %s
		pool green %s
		sticky header X-User-ID
		weights blue 90 green 10
		# As the load client does, close idle upstream connections after
		# a few seconds: with Caddy's default of 2 minutes, the
		# connections of every busy moment (the machine's other work
		# slowing answers) stay open long after it and read as growth.
		proxy {
			transport http {
				keepalive 5s
			}
		}
		guard {
			error_rate 5%%
			window 2s
			min_requests 20
			baseline 2x
			cooldown 5s
		}
	}
}
`, cport, etcdURL, aport, name, filepath.Join(dir, "state"), port, blue, green)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		return nil, err
	}
	g := &gatewayProc{
		name:       name,
		base:       fmt.Sprintf("http://127.0.0.1:%d", port),
		adminURL:   fmt.Sprintf("http://127.0.0.1:%d", aport),
		caddyAdmin: fmt.Sprintf("http://127.0.0.1:%d", cport),
		out:        new(lockedBuffer),
		done:       make(chan struct{}),
	}
	g.cmd = exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	g.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	if g.admin, err = admin.NewClient(g.adminURL, ""); err != nil {
		return nil, err
	}
	g.admin.HTTP = &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if g.exited() {
			return nil, fmt.Errorf("gateway %s exited:\n%s", name, tail(g.out.String(), 3000))
		}
		if _, err := g.admin.Health(ctx); err == nil {
			return g, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			g.stop()
			return nil, fmt.Errorf("gateway %s not serving after 60 s:\n%s", name, tail(g.out.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gatewayProc) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

func (g *gatewayProc) stop() {
	if g.exited() {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

type counters struct {
	requests, transportErrs, status5xx              atomic.Int64
	flips, flags, pools, fallbacks, sse, changeErrs atomic.Int64
}

// load sends rps requests a second, round robin, from many users.
func load(ctx context.Context, gws []*gatewayProc, rps int, st *counters) {
	// Idle connections are closed after a few seconds, as browsers and
	// proxies do; kept for ever, the connections opened at the busiest
	// moment would read as growth in the gateways' fds and goroutines.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 5 * time.Second}}
	defer c.CloseIdleConnections()
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	sem := make(chan struct{}, 32) // bounds requests in flight
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // the gateways are behind; skip rather than queue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gws[i%len(gws)].base+"/", nil)
			req.Header.Set("X-User-ID", "u"+strconv.Itoa(i%10000))
			resp, err := c.Do(req)
			st.requests.Add(1)
			if err != nil {
				if ctx.Err() == nil {
					st.transportErrs.Add(1)
				}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				st.status5xx.Add(1)
			}
		})
	}
}

// changes is the operators and the guard: a flip every 5 s, a flag change
// every 3 s (every fourth a deletion), the green pool's upstream swapped
// every 20 s, and once a minute a fallback drill: green to 50%, then every
// green response a 500 until the guard takes green off traffic.
func changes(ctx context.Context, gws []*gatewayProc, greens []*httptest.Server, st *counters) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	count := func(err error, ok *atomic.Int64) {
		switch {
		case err == nil:
			ok.Add(1)
		case ctx.Err() == nil:
			st.changeErrs.Add(1)
		}
	}
	for sec := 1; ; sec++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		g := gws[sec%len(gws)].admin
		w := admin.WriteOptions{Reason: fmt.Sprintf("soak second %d", sec)}
		switch {
		case sec%60 == 30:
			count(drill(ctx, g, greens, w), &st.fallbacks)
		case sec%20 == 10:
			up := hostport(greens[(sec/20)%len(greens)])
			_, err := g.SetPool(ctx, "checkout", "green", gateway.Pool{Upstreams: []string{up}, Release: "v2"}, admin.WriteOptions{Reason: w.Reason, Force: true})
			count(err, &st.pools)
		case sec%5 == 0:
			_, err := g.Flip(ctx, "checkout", w)
			count(err, &st.flips)
		case sec%3 == 0:
			name := fmt.Sprintf("f%d", sec%7)
			var err error
			if sec%4 == 0 {
				_, err = g.DeleteFlag(ctx, "checkout", name, w)
				var ae *admin.APIError
				if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
					err = nil
				}
			} else {
				_, err = g.SetFlag(ctx, "checkout", name, float64(rand.IntN(101)), w)
			}
			count(err, &st.flags)
		}
	}
}

// drill makes green fail until the guard falls back from it.
func drill(ctx context.Context, g *admin.Client, greens []*httptest.Server, w admin.WriteOptions) error {
	if _, err := g.SetWeights(ctx, "checkout", map[string]float64{"blue": 50, "green": 50}, w); err != nil {
		return fmt.Errorf("drill: weights: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second): // healthy samples for the baseline
	}
	for _, s := range greens {
		if err := fault(ctx, s, `{"error_rate": 1}`); err != nil {
			return err
		}
	}
	defer func() {
		for _, s := range greens {
			_ = fault(context.WithoutCancel(ctx), s, "")
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		d, err := g.Status(ctx, "checkout")
		if err == nil && d.Weights["green"] == 0 && d.Meta.Source == "guard" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("drill: the guard did not take green off traffic within 20 s")
}

// fault sets (body) or clears ("") the backend's fault injection.
func fault(ctx context.Context, s *httptest.Server, body string) error {
	method := http.MethodPut
	if body == "" {
		method = http.MethodDelete
	}
	req, _ := http.NewRequestWithContext(ctx, method, s.URL+"/_fault", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fault: %w", err)
	}
	resp.Body.Close()
	return nil
}

// sseClients opens an events stream every 2 s on one of the gateways and
// keeps it 1 to 6 s, reading what comes.
func sseClients(ctx context.Context, gws []*gatewayProc, st *counters) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		g := gws[i%len(gws)]
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, time.Second+rand.N(5*time.Second))
			defer cancel()
			req, _ := http.NewRequestWithContext(sctx, http.MethodGet, g.adminURL+"/api/v1/events?follow=1", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			st.sse.Add(1)
			_, _ = io.Copy(io.Discard, resp.Body)
		})
	}
}

// sample is one reading of every gateway and of etcd.
type sample struct {
	at       time.Duration
	rss      []float64 // MiB
	gorout   []float64
	fds      []float64
	series   []float64
	keys     float64 // every etcd key
	liveKeys float64 // keys outside history and events, which retention bounds
}

func take(ctx context.Context, at time.Duration, gws []*gatewayProc, cli *clientv3.Client) (sample, error) {
	s := sample{at: at}
	for _, g := range gws {
		pid := g.cmd.Process.Pid
		rss, err := rssMiB(pid)
		if err != nil {
			return s, err
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			return s, err
		}
		gor, series, err := scrape(ctx, g.adminURL+"/metrics")
		if err != nil {
			return s, err
		}
		s.rss = append(s.rss, rss)
		s.fds = append(s.fds, float64(len(fds)))
		s.gorout = append(s.gorout, gor)
		s.series = append(s.series, series)
	}
	resp, err := cli.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		return s, err
	}
	s.keys = float64(len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if !strings.Contains(k, "/history/") && !strings.Contains(k, "/events/") {
			s.liveKeys++
		}
	}
	return s, nil
}

func rssMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// scrape reads go_goroutines and counts the series of a Prometheus text
// exposition.
func scrape(ctx context.Context, url string) (goroutines, series float64, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	goroutines = -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series++
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			goroutines, _ = strconv.ParseFloat(v, 64)
		}
	}
	if goroutines < 0 {
		return 0, 0, fmt.Errorf("%s has no go_goroutines", url)
	}
	return goroutines, series, sc.Err()
}

func (s sample) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6s", s.at.Round(time.Second))
	for i := range s.rss {
		fmt.Fprintf(&b, "  gw%d rss %.1fMiB gor %.0f fds %.0f series %.0f", i, s.rss[i], s.gorout[i], s.fds[i], s.series[i])
	}
	fmt.Fprintf(&b, "  etcd keys %.0f (live %.0f)", s.keys, s.liveKeys)
	return b.String()
}

// report prints, per measure, the first and last reading after warm-up
// and the fitted growth per hour, and fails on any above the bound.
func report(w io.Writer, samples []sample, cfg config) error {
	var after []sample
	for _, s := range samples {
		if s.at >= cfg.warmup {
			after = append(after, s)
		}
	}
	if len(after) == 0 || after[len(after)-1].at-after[0].at < 3*time.Minute {
		return fmt.Errorf("less than 3 minutes of samples after the warm-up of %s: soak longer", cfg.warmup)
	}
	type measure struct {
		name  string
		value func(sample) float64
		check bool
	}
	var ms []measure
	for i := range after[0].rss {
		ms = append(ms,
			measure{fmt.Sprintf("gw%d RSS (MiB)", i), func(s sample) float64 { return s.rss[i] }, true},
			measure{fmt.Sprintf("gw%d goroutines", i), func(s sample) float64 { return s.gorout[i] }, true},
			measure{fmt.Sprintf("gw%d open fds", i), func(s sample) float64 { return s.fds[i] }, true},
			measure{fmt.Sprintf("gw%d metric series", i), func(s sample) float64 { return s.series[i] }, true})
	}
	ms = append(ms,
		measure{"etcd keys, live (no history/events)", func(s sample) float64 { return s.liveKeys }, true},
		measure{"etcd keys, all (history and events capped at 1000)", func(s sample) float64 { return s.keys }, false})

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "measure\tafter warm-up\tat end\tmin\tmax\tgrowth/hour\tverdict\t\n")
	var failed []string
	for _, m := range ms {
		lo, hi := m.value(after[0]), m.value(after[0])
		for _, s := range after {
			lo, hi = min(lo, m.value(s)), max(hi, m.value(s))
		}
		xs, ys := minuteFloors(after, m.value)
		growth := projectedGrowth(xs, ys)
		verdict := "flat"
		switch {
		case !m.check:
			verdict = "(not checked)"
		case growth > cfg.maxGrowth:
			verdict = "GROWING"
			failed = append(failed, m.name)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%+.1f%%\t%s\t\n", m.name, m.value(after[0]), m.value(after[len(after)-1]), lo, hi, growth, verdict)
	}
	tw.Flush()
	if len(failed) > 0 {
		return fmt.Errorf("still growing after the warm-up (more than %.0f%%/hour projected): %s", cfg.maxGrowth, strings.Join(failed, ", "))
	}
	fmt.Fprintln(w, "\nflat: nothing grows by more than", cfg.maxGrowth, "% per hour after the warm-up")
	return nil
}

// minuteFloors takes the least sample of each minute (at the minute's
// mean time): a leak raises the floor, while what comes and goes between
// two samples does not: requests in flight and the upstream connections
// they hold (more of both whenever the machine is busier), flags created
// and deleted, SSE clients connecting and leaving. A mean follows all of
// those, and on a shared machine reads a busier half hour as growth.
func minuteFloors(samples []sample, value func(sample) float64) (xs, ys []float64) {
	var sumX, n, floor float64
	minute := samples[0].at.Truncate(time.Minute)
	flush := func() {
		if n > 0 {
			xs, ys = append(xs, sumX/n), append(ys, floor)
		}
		sumX, n = 0, 0
	}
	for _, s := range samples {
		if m := s.at.Truncate(time.Minute); m != minute {
			flush()
			minute = m
		}
		if n == 0 || value(s) < floor {
			floor = value(s)
		}
		sumX += s.at.Hours()
		n++
	}
	flush()
	return xs, ys
}

// projectedGrowth returns the trend of ys over xs (hours) as a percentage
// of their mean: how much an hour more would add. The trend is the
// Theil–Sen slope, the median of the slopes between every two points,
// rather than a least-squares fit: a few minutes that caught no quiet
// moment (the soak's changes repeat every 7 minutes, so a minute may hold
// flags throughout) would tilt a least-squares line, while a leak tilts
// most pairs.
func projectedGrowth(xs, ys []float64) float64 {
	var slopes []float64
	var sum float64
	for i := range xs {
		sum += ys[i]
		for j := i + 1; j < len(xs); j++ {
			if xs[j] != xs[i] {
				slopes = append(slopes, (ys[j]-ys[i])/(xs[j]-xs[i]))
			}
		}
	}
	if len(slopes) == 0 || sum == 0 {
		return 0
	}
	slices.Sort(slopes)
	n := len(slopes)
	median := slopes[n/2]
	if n%2 == 0 {
		median = (slopes[n/2-1] + slopes[n/2]) / 2
	}
	return 100 * median / (sum / float64(len(ys)))
}
