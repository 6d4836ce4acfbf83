//go:build linux

package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/rollout"
)

// Fixed ports are safe: every host is a namespace of its own.
const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
	dataPort       = 8080
	adminPort      = 9180
)

// waitFor polls cond every 10 ms until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// cluster is a 3-member etcd cluster, one member per host.
type cluster struct {
	members []*host
	procs   []*proc
}

func startCluster(t *testing.T, l *lab) *cluster {
	t.Helper()
	c := &cluster{}
	var peers []string
	for i := range 3 {
		h := l.addHost(fmt.Sprintf("e%d", i+1), 11+i)
		c.members = append(c.members, h)
		peers = append(peers, fmt.Sprintf("%s=http://%s:%d", h.name, h.ip, etcdPeerPort))
	}
	// The members start together: each waits for the others to elect.
	for _, h := range c.members {
		c.procs = append(c.procs, h.start("etcd "+h.name, nil, bins.etcd,
			"-name", h.name, "-data", filepath.Join(t.TempDir(), h.name),
			"-client", fmt.Sprintf("http://%s:%d", h.ip, etcdClientPort),
			"-peer", fmt.Sprintf("http://%s:%d", h.ip, etcdPeerPort),
			"-cluster", strings.Join(peers, ",")))
	}
	for _, p := range c.procs {
		waitFor(t, 60*time.Second, p.name+" to be ready", func() bool {
			if p.exited() {
				t.Fatalf("%s exited:\n%s", p.name, p.out.String())
			}
			return strings.Contains(p.out.String(), "ready\n")
		})
	}
	return c
}

func (c *cluster) endpoints() []string {
	var eps []string
	for _, h := range c.members {
		eps = append(eps, fmt.Sprintf("http://%s:%d", h.ip, etcdClientPort))
	}
	return eps
}

// client is an etcd client whose connections start on from.
func (c *cluster) client(t *testing.T, from *host) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.endpoints(),
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return from.dial(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// leader is the member that leads the cluster now.
func (c *cluster) leader(t *testing.T, cli *clientv3.Client) *host {
	t.Helper()
	for _, h := range c.members {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		st, err := cli.Status(ctx, fmt.Sprintf("http://%s:%d", h.ip, etcdClientPort))
		cancel()
		if err == nil && st.Header.MemberId == st.Leader {
			return h
		}
	}
	t.Fatal("no member says it leads")
	return nil
}

// backends runs the blue and green example backends on one host.
func startBackends(t *testing.T, l *lab) *host {
	t.Helper()
	h := l.addHost("be", 50)
	h.start("backend blue", nil, bins.backnd, "-listen", "0.0.0.0:9001", "-pool", "blue", "-release", "v1")
	h.start("backend green", nil, bins.backnd, "-listen", "0.0.0.0:9002", "-pool", "green", "-release", "v2")
	c := h.client(2 * time.Second)
	for _, port := range []int{9001, 9002} {
		waitFor(t, 20*time.Second, fmt.Sprintf("backend :%d", port), func() bool {
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	return h
}

// gateway is the switchback binary on a host of its own, storing in the
// cluster. Its admin API answers on the host's loopback only.
type gatewayHost struct {
	*host
	admin *admin.Client
}

func startGateway(t *testing.T, l *lab, name string, n int, c *cluster, be *host, extra ...string) *gatewayHost {
	t.Helper()
	h := l.addHost(name, n)
	dir := t.TempDir()
	cf := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	switchback {
		store etcd %s
		admin 127.0.0.1:%d
		instance %s
		state_dir %s
	}
}

http://:%d {
	switchback checkout {
		pool blue %s:9001
		pool green %s:9002
		sticky header X-User-ID
		live blue
		%s
	}
}
`, strings.Join(c.endpoints(), " "), adminPort, name, filepath.Join(dir, "state"), dataPort, be.ip, be.ip, strings.Join(extra, "\n"))
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := h.start("gateway "+name, []string{"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")},
		bins.switchback, "run", "--config", path, "--adapter", "caddyfile")
	a, err := admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", adminPort), "")
	if err != nil {
		t.Fatal(err)
	}
	a.HTTP = h.client(10 * time.Second)
	g := &gatewayHost{host: h, admin: a}
	waitFor(t, 60*time.Second, "gateway "+name+" to serve", func() bool {
		if p.exited() {
			t.Fatalf("gateway %s exited:\n%s", name, tail(p.out.String(), 3000))
		}
		_, err := a.Health(t.Context())
		return err == nil
	})
	return g
}

// served asks g, from client host from, who serves user: the pool and
// the version the gateway decided under.
func (g *gatewayHost) served(ctx context.Context, c *http.Client, user string) (pool, version string, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d/", g.ip, dataPort), nil)
	req.Header.Set("X-User-ID", user)
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %d", resp.StatusCode)
	}
	var echo struct {
		Pool       string `json:"pool"`
		Switchback struct {
			Version string `json:"version"`
		} `json:"switchback"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		return "", "", err
	}
	return echo.Pool, echo.Switchback.Version, nil
}

// traffic sends requests from a client host to gateways at about rps,
// round robin, counting failures, until halted (at most 60 s).
type traffic struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	sent     atomic.Int64
	failed   atomic.Int64
	firstErr atomic.Value
}

func startTraffic(t *testing.T, from *host, rps int, gws ...*gatewayHost) *traffic {
	t.Helper()
	tr := &traffic{stop: make(chan struct{})}
	c := from.client(5 * time.Second)
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			g := gws[i%len(gws)]
			_, _, err := g.served(ctx, c, fmt.Sprintf("u%d", i%1000))
			tr.sent.Add(1)
			if err != nil {
				tr.failed.Add(1)
				tr.firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", g.name, err))
			}
		}
	}()
	t.Cleanup(tr.halt)
	return tr
}

func (tr *traffic) halt() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
}

// TestGatewayCutFromEtcd: a gateway that loses every etcd member keeps
// serving the version it last applied, with no failed request, refuses
// changes with 503, and applies what it missed once the link is back.
func TestGatewayCutFromEtcd(t *testing.T) {
	l := newLab(t)
	c := startCluster(t, l)
	be := startBackends(t, l)
	cl := l.addHost("cl", 100)
	gws := []*gatewayHost{startGateway(t, l, "g1", 21, c, be), startGateway(t, l, "g2", 22, c, be), startGateway(t, l, "g3", 23, c, be)}
	web := cl.client(5 * time.Second)
	for _, g := range gws {
		waitFor(t, 20*time.Second, g.name+" to serve blue v1", func() bool {
			p, v, err := g.served(t.Context(), web, "u1")
			return err == nil && p == "blue" && v == "1"
		})
	}

	g1 := gws[0]
	tr := startTraffic(t, cl, 100, g1)
	for _, m := range c.members {
		l.cut(g1.host, m)
	}

	var apiErr *admin.APIError
	took := waitFor(t, 30*time.Second, "g1 to refuse a change with 503", func() bool {
		_, err := g1.admin.Flip(t.Context(), "checkout", admin.WriteOptions{Reason: "during the cut"})
		return errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable
	})
	t.Logf("g1 refused a change with 503 %s after the cut: %s", took.Round(time.Millisecond), apiErr.Message)

	d, err := gws[1].admin.Flip(t.Context(), "checkout", admin.WriteOptions{Reason: "through g2 while g1 is cut off"})
	if err != nil {
		t.Fatalf("flip through g2 while g1 is cut off: %v", err)
	}
	want := fmt.Sprint(d.Version)
	for _, g := range gws[1:] {
		waitFor(t, 20*time.Second, g.name+" to serve green", func() bool {
			p, v, err := g.served(t.Context(), web, "u1")
			return err == nil && p == "green" && v == want
		})
	}
	sent := tr.sent.Load()
	waitFor(t, 20*time.Second, "traffic to g1 during the cut", func() bool { return tr.sent.Load() >= sent+100 })
	if p, v, err := g1.served(t.Context(), web, "u1"); err != nil || p != "blue" || v != "1" {
		t.Errorf("g1 during the cut: %s v%s %v; want blue v1, the last version it applied", p, v, err)
	}

	l.heal()
	healed := waitFor(t, 30*time.Second, "g1 to apply the version it missed", func() bool {
		p, v, err := g1.served(t.Context(), web, "u1")
		return err == nil && p == "green" && v == want
	})
	t.Logf("g1 applied version %s %s after the link came back", want, healed.Round(time.Millisecond))
	tr.halt()
	if n := tr.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests to g1 failed across the cut; first: %v", n, tr.sent.Load(), tr.firstErr.Load())
	}
	t.Logf("%d requests to g1 across the cut, 0 failed", tr.sent.Load())
}

// ack is one write a client saw answered 200.
type ack struct {
	version uint64
	reason  string
}

// TestEtcdLeaderCutFromPeers: while writers change the deployment through
// all three gateways, the etcd leader is cut off from the other two
// members, then the cut heals. Every write a client saw acknowledged is in
// the history, at the version it was acknowledged with.
func TestEtcdLeaderCutFromPeers(t *testing.T) {
	l := newLab(t)
	c := startCluster(t, l)
	be := startBackends(t, l)
	cl := l.addHost("cl", 100)
	gws := []*gatewayHost{startGateway(t, l, "g1", 21, c, be), startGateway(t, l, "g2", 22, c, be), startGateway(t, l, "g3", 23, c, be)}
	cli := c.client(t, cl)

	var (
		mu     sync.Mutex
		acks   []ack
		failed = map[string]int{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Four writers per gateway, each on a flag of its own: a write that
	// lands on the cut-off member waits for its timeout, the others go on.
	for gi, g := range gws {
		for wi := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				flag := fmt.Sprintf("w%d%d", gi, wi)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					reason := fmt.Sprintf("%s write %d", flag, i)
					ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
					d, err := g.admin.SetFlag(ctx, "checkout", flag, float64(i%101), admin.WriteOptions{Reason: reason})
					cancel()
					mu.Lock()
					if err == nil {
						acks = append(acks, ack{d.Version, reason})
					} else {
						failed[errorKind(err)]++
					}
					mu.Unlock()
				}
			}()
		}
	}
	halt := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	t.Cleanup(halt)
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("failed writes: %v", failed)
		}
	})

	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	waitFor(t, 20*time.Second, "writes before the cut", func() bool { return count() >= 20 })
	old := c.leader(t, cli)
	for _, m := range c.members {
		if m != old {
			l.cut(old, m)
		}
	}
	t.Logf("cut leader %s from its peers with %d writes acknowledged", old.name, count())
	var newLeader *host
	elected := waitFor(t, 30*time.Second, "a new leader among the other two", func() bool {
		for _, m := range c.members {
			if m == old {
				continue
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			st, err := cli.Status(ctx, fmt.Sprintf("http://%s:%d", m.ip, etcdClientPort))
			cancel()
			if err == nil && st.Leader != 0 && st.Header.MemberId == st.Leader {
				newLeader = m
				return true
			}
		}
		return false
	})
	t.Logf("%s elected %s after the cut", newLeader.name, elected.Round(time.Millisecond))
	during, after := count(), 0
	defer func() { t.Logf("%d writes acknowledged while %s was cut off", after-during, old.name) }()
	waitFor(t, 30*time.Second, "writes acknowledged while the old leader is cut off", func() bool { return count() >= during+5 })
	l.heal()
	after = count()
	waitFor(t, 30*time.Second, "writes after the cut heals", func() bool { return count() >= after+20 })
	halt()

	store, err := configstore.New(cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	hist, err := store.History(t.Context(), "checkout", 0)
	if err != nil {
		t.Fatal(err)
	}
	byVersion := make(map[uint64]string, len(hist))
	for _, m := range hist {
		byVersion[m.Version] = m.Reason
	}
	mu.Lock()
	defer mu.Unlock()
	var lost int
	for _, a := range acks {
		if got, ok := byVersion[a.version]; !ok || got != a.reason {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged write %q at version %d: history has %q (present: %v)", a.reason, a.version, got, ok)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are not in the history as acknowledged", lost, len(acks))
	}
	t.Logf("%d writes acknowledged, all in the history of %d versions; refused or failed: %v", len(acks), len(hist), failed)
}

// errorKind sums up a failed write for the log: the HTTP status, or that
// no answer came.
func errorKind(err error) string {
	var ae *admin.APIError
	if errors.As(err, &ae) {
		msg := ae.Message
		if i := strings.IndexAny(msg, "0123456789"); i >= 0 {
			msg = msg[:i] // versions and durations vary; the kind does not
		}
		return fmt.Sprintf("HTTP %d %s", ae.Status, msg)
	}
	return "no answer"
}

// TestRolloutDriverCutOffMidRollout: the instance driving a rollout is
// cut off from every etcd member while a step bakes. Another instance is
// elected once the driver's lease expires and finishes the rollout; every
// step is written once, and nothing more is written when the old driver
// is back.
func TestRolloutDriverCutOffMidRollout(t *testing.T) {
	l := newLab(t)
	c := startCluster(t, l)
	be := startBackends(t, l)
	cl := l.addHost("cl", 100)
	// A lenient guard: the rollout needs one, and its samples, to advance.
	guard := "guard {\n error_rate 50%\n window 2s\n min_requests 5\n}"
	gws := []*gatewayHost{startGateway(t, l, "g1", 21, c, be, guard), startGateway(t, l, "g2", 22, c, be, guard), startGateway(t, l, "g3", 23, c, be, guard)}
	startTraffic(t, cl, 90, gws...)
	cli := c.client(t, cl)
	store, err := configstore.New(cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	steps := []float64{10, 20, 30, 40, 50}
	ro, err := gws[0].admin.StartRollout(t.Context(), "checkout", rollout.Request{Target: "pool:green", Steps: steps, Bake: "2s", Reason: "ship green"}, admin.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// stepsWritten counts, per step, the versions in history that wrote it.
	stepsWritten := func() (map[int]int, map[int]string) {
		hist, err := store.History(t.Context(), "checkout", 0)
		if err != nil {
			t.Fatal(err)
		}
		n, by := map[int]int{}, map[int]string{}
		for _, m := range hist {
			for i := range steps {
				if strings.Contains(m.Reason, ro.ID+" ") && strings.Contains(m.Reason, fmt.Sprintf("step %d/%d:", i+1, len(steps))) {
					n[i]++
					by[i] = m.Author
				}
			}
		}
		return n, by
	}
	var driver string
	waitFor(t, 30*time.Second, "the first step", func() bool {
		n, by := stepsWritten()
		driver = by[0]
		return n[0] == 1
	})
	var old *gatewayHost
	for _, g := range gws {
		if g.name == driver {
			old = g
		}
	}
	if old == nil {
		t.Fatalf("step 1 was written by %q, not one of the gateways", driver)
	}
	for _, m := range c.members {
		l.cut(old.host, m)
	}
	t.Logf("cut the driver %s off from etcd after step 1", driver)
	other := gws[0]
	if other == old {
		other = gws[1]
	}
	took := waitFor(t, 45*time.Second, "the rollout to finish without its first driver", func() bool {
		r, err := other.admin.Rollout(t.Context(), "checkout")
		return err == nil && r.State == rollout.Done
	})
	n, by := stepsWritten()
	t.Logf("rollout done %s after the cut; steps written by %v", took.Round(time.Millisecond), by)
	l.heal()
	// Once the old driver has caught up, it has seen the rollout end; had
	// it written a step meanwhile, that version would be in history.
	d, err := other.admin.Status(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, driver+" to catch up", func() bool {
		st, err := old.admin.Status(t.Context(), "checkout")
		return err == nil && st.Instances[driver] >= d.Version
	})
	n, by = stepsWritten()
	for i := range steps {
		if n[i] != 1 {
			t.Errorf("step %d/%d written %d times, want once (by %v)", i+1, len(steps), n[i], by)
		}
	}
	// Step 2 may have been written as the cut took effect; from step 3 on
	// the bake alone puts them after it.
	for i := 2; i < len(steps); i++ {
		if by[i] == driver {
			t.Errorf("step %d/%d written by %s, which was cut off after step 1", i+1, len(steps), driver)
		}
	}
}
