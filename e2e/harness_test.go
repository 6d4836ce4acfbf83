// Package e2e runs real gateway processes (the switchback binary) against
// a real etcd, to test what only several instances show: convergence, one
// fallback among many guards, fail-static through an etcd outage.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
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

// gateway is one switchback process.
type gateway struct {
	name     string
	base     string // data plane
	adminURL string
	cmd      *exec.Cmd
	log      *bytes.Buffer
	done     chan struct{}
	stateDir string
	config   string // its Caddyfile, for commands that read it (migrate --database)
}

// deployment is the switchback block every gateway of a test serves.
func deployment(b testharness.Backends, extra string) string {
	return fmt.Sprintf(`switchback checkout {
		pool blue %s
		pool green %s
		sticky header X-User-ID
		%s
	}`, testharness.HostPort(b.Blue), testharness.HostPort(b.Green), extra)
}

// startGateway runs the gateway binary with a Caddyfile that serves site on
// a free loopback port, stores in e, and serves the admin API on another.
func startGateway(t testing.TB, name string, e *etcdtest.Etcd, site, stateDir string) *gateway {
	t.Helper()
	return startGatewayWith(t, name, e, site, stateDir, "")
}

// startGatewayWith is startGateway with more lines for the switchback
// global option.
func startGatewayWith(t testing.TB, name string, e *etcdtest.Etcd, site, stateDir, global string) *gateway {
	t.Helper()
	dir := t.TempDir()
	if stateDir == "" {
		stateDir = filepath.Join(dir, "state")
	}
	port, aport := testharness.FreePort(t), testharness.FreePort(t)
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
`, e.Endpoint(), aport, name, stateDir, global, port, site)
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
		config:   path,
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
	testharness.WaitFor(t, "gateway "+name+" to serve", func() bool {
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
	e, err := testharness.Ask(context.Background(), g.base, user)
	return e.Pool, e.Switchback.Version, err
}

// bases are the gateways' data-plane URLs, for testharness.StartTraffic.
func bases(gws []*gateway) []string {
	var out []string
	for _, g := range gws {
		out = append(out, g.base)
	}
	return out
}
