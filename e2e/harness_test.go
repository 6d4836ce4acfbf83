// Package e2e runs real gateway processes (the switchback binary) against
// a real etcd, to test what only several instances show: convergence, one
// fallback among many guards, fail-static through an etcd outage.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/examples/backend"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// binary is the gateway built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchback-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "switchback")
	args := []string{"build", "-o", binary}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/a8e2c47e/switchback/cmd/switchback")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the gateway:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds, failing after 20 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// etcd is a real etcd in the test process that can be stopped and started
// again on the same data and address.
type etcd struct {
	dir, addr string
	e         *configstore.Embedded
}

func startEtcd(t testing.TB) *etcd {
	t.Helper()
	e := &etcd{dir: t.TempDir(), addr: "127.0.0.1:0"}
	e.start(t)
	e.addr = strings.TrimPrefix(e.e.Endpoints()[0], "http://")
	t.Cleanup(func() { e.stop(t) })
	return e
}

func (e *etcd) start(t testing.TB) {
	t.Helper()
	var err error
	if e.e, err = configstore.StartEmbedded(e.dir, e.addr); err != nil {
		t.Fatal(err)
	}
}

func (e *etcd) stop(t testing.TB) {
	t.Helper()
	if e.e != nil {
		if err := e.e.Close(); err != nil {
			t.Error(err)
		}
		e.e = nil
	}
}

func (e *etcd) endpoint() string { return "http://" + e.addr }

func (e *etcd) client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e *etcd) store(t testing.TB) *configstore.Store {
	t.Helper()
	s, err := configstore.New(e.client(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// backends are a blue and a green example backend on loopback.
type backends struct{ blue, green *httptest.Server }

func startBackends(t testing.TB) backends {
	t.Helper()
	b := backends{httptest.NewServer(backend.New("blue", "v1")), httptest.NewServer(backend.New("green", "v2"))}
	t.Cleanup(b.blue.Close)
	t.Cleanup(b.green.Close)
	return b
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func setFault(t testing.TB, s *httptest.Server, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, s.URL+"/_fault", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /_fault %s: %d", body, resp.StatusCode)
	}
}

// gateway is one switchback process.
type gateway struct {
	name     string
	base     string // data plane
	adminURL string
	cmd      *exec.Cmd
	log      *bytes.Buffer
	done     chan struct{}
	stateDir string
}

// deployment is the switchback block every gateway of a test serves.
func deployment(b backends, extra string) string {
	return fmt.Sprintf(`switchback checkout {
		pool blue %s
		pool green %s
		sticky header X-User-ID
		%s
	}`, hostport(b.blue), hostport(b.green), extra)
}

// startGateway runs the gateway binary with a Caddyfile that serves site on
// a free loopback port, stores in e, and serves the admin API on another.
func startGateway(t testing.TB, name string, e *etcd, site, stateDir string) *gateway {
	t.Helper()
	return startGatewayWith(t, name, e, site, stateDir, "")
}

// startGatewayWith is startGateway with more lines for the switchback
// global option.
func startGatewayWith(t testing.TB, name string, e *etcd, site, stateDir, global string) *gateway {
	t.Helper()
	dir := t.TempDir()
	if stateDir == "" {
		stateDir = filepath.Join(dir, "state")
	}
	port, aport := freePort(t), freePort(t)
	cf := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	default_bind 127.0.0.1
	switchback {
		store etcd %s
		admin 127.0.0.1:%d
		instance %s
		state_dir %s
		%s
	}
}

http://127.0.0.1:%d {
	%s
}
`, e.endpoint(), aport, name, stateDir, global, port, site)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{
		name:     name,
		base:     fmt.Sprintf("http://127.0.0.1:%d", port),
		adminURL: fmt.Sprintf("http://127.0.0.1:%d", aport),
		log:      new(bytes.Buffer),
		done:     make(chan struct{}),
		stateDir: stateDir,
	}
	g.cmd = exec.Command(binary, "run", "--config", path, "--adapter", "caddyfile")
	g.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	g.cmd.Stdout, g.cmd.Stderr = syncWriter(g.log), syncWriter(g.log)
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		g.stop(t)
		if strings.Contains(g.logText(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in gateway %s", name)
		}
		if t.Failed() {
			t.Logf("log of gateway %s:\n%s", name, tail(g.logText(), 4000))
		}
	})
	waitFor(t, "gateway "+name+" to serve", func() bool {
		select {
		case <-g.done:
			t.Fatalf("gateway %s exited:\n%s", name, tail(g.logText(), 4000))
		default:
		}
		resp, err := http.Get(g.adminURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return g
}

var logMu sync.Mutex

type lockedWriter struct{ b *bytes.Buffer }

func (w lockedWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return w.b.Write(p)
}

func syncWriter(b *bytes.Buffer) lockedWriter { return lockedWriter{b} }

func (g *gateway) logText() string {
	logMu.Lock()
	defer logMu.Unlock()
	return g.log.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// stop ends the process gracefully, killing it if it does not stop.
func (g *gateway) stop(t testing.TB) {
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
		t.Errorf("gateway %s did not stop within 15 s of SIGINT", g.name)
	}
}

func (g *gateway) admin(t testing.TB) *admin.Client {
	t.Helper()
	c, err := admin.NewClient(g.adminURL, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// served asks the gateway who serves user: the backend's pool and the
// document version the gateway decided under.
func (g *gateway) served(t testing.TB, user string) (pool, version string, err error) {
	req, _ := http.NewRequest(http.MethodGet, g.base+"/", nil)
	req.Header.Set("X-User-ID", user)
	resp, err := http.DefaultClient.Do(req)
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

// traffic sends requests to gateways at about rps in total, round robin,
// counting failures, until stopped (and at most 60 s).
type traffic struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	sent     atomic.Int64
	failed   atomic.Int64
	firstErr atomic.Value
}

func startTraffic(t testing.TB, rps int, gws ...*gateway) *traffic {
	t.Helper()
	tr := &traffic{stop: make(chan struct{})}
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		c := &http.Client{Timeout: 5 * time.Second}
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
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/", nil)
			req.Header.Set("X-User-ID", fmt.Sprintf("u%d", i%10000))
			resp, err := c.Do(req)
			tr.sent.Add(1)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					err = fmt.Errorf("%s: status %d", g.name, resp.StatusCode)
				}
			}
			if err != nil {
				tr.failed.Add(1)
				tr.firstErr.CompareAndSwap(nil, err.Error())
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
