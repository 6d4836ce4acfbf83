package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/a8e2c47e/switchback/admin"
	_ "github.com/a8e2c47e/switchback/caddymodule"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/examples/backend"
)

// Tokens of the gateway the browser tests drive.
const (
	operatorToken = "op-3f1c9a6e2b7d4e58a0c1"
	viewerToken   = "view-8d2e7b1f6c4a9e30b5d7"
)

// gatewayEnv is a real gateway (Caddy with Switchback's modules, in this
// process) in front of a blue and a green example backend, storing in a
// real embedded etcd, with its admin API and console on a port of its own.
type gatewayEnv struct {
	proxy    string // data plane base URL
	admin    string // admin base URL
	operator *admin.Client
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

// waitFor polls cond until it holds, failing after 15 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startGateway runs the gateway until the test ends. Caddy is one per
// process, so tests that call it must not run in parallel.
func startGateway(t testing.TB) *gatewayEnv {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	blue := httptest.NewServer(backend.New("blue", "v1"))
	green := httptest.NewServer(backend.New("green", "v2"))
	t.Cleanup(blue.Close)
	t.Cleanup(green.Close)

	etcd, err := configstore.StartEmbedded(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })

	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	lines := fmt.Sprintf("alice operator %s\nvictor viewer %s\n", admin.HashToken(operatorToken), admin.HashToken(viewerToken))
	if err := os.WriteFile(tokens, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	port, aport := freePort(t), freePort(t)
	src := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	switchback {
		store etcd %s
		admin 127.0.0.1:%d
		admin_tokens %s
		instance console-test
		state_dir %s
	}
}
http://127.0.0.1:%d {
	switchback checkout {
		pool blue %s {
			release v1
		}
		pool green %s {
			release v2
		}
		weights blue 100 green 0
		sticky header X-User-ID
		flag new_payment_flow 10
		flag dark_mode 0
		guard {
			error_rate 5%%
			p95 500ms
			window 10s
			min_requests 20
		}
		retain 24h
		health_uri /health
		health_interval 1s
	}
}
`, etcd.Endpoints()[0], aport, tokens, filepath.Join(dir, "state"), port,
		strings.TrimPrefix(blue.URL, "http://"), strings.TrimPrefix(green.URL, "http://"))
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, src)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	env := &gatewayEnv{
		proxy: fmt.Sprintf("http://127.0.0.1:%d", port),
		admin: fmt.Sprintf("http://127.0.0.1:%d", aport),
	}
	if env.operator, err = admin.NewClient(env.admin, operatorToken); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the admin API and the first version", func() bool {
		d, err := env.operator.Status(context.Background(), "checkout")
		return err == nil && len(d.Instances) > 0
	})
	return env
}

// pools asks the proxy for a few users and returns the pool each got.
func (e *gatewayEnv) pools(t testing.TB) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, user := range []string{"ann", "bob", "cyd", "dee", "eve", "fay", "gus", "hal"} {
		req, _ := http.NewRequest(http.MethodGet, e.proxy+"/", nil)
		req.Header.Set("X-User-ID", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Pool string `json:"pool"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[body.Pool]++
	}
	return got
}

// waitPool waits until every user the proxy serves lands on pool.
func (e *gatewayEnv) waitPool(t testing.TB, pool string) {
	t.Helper()
	waitFor(t, "all traffic on "+pool, func() bool { return e.pools(t)[pool] == 8 })
}

// cli runs the real command-line client in this process.
func (e *gatewayEnv) cli(t testing.TB, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"SWITCHBACK_ADMIN": e.admin, "SWITCHBACK_TOKEN": operatorToken}
	if code := admin.RunCLI(t.Context(), args, &out, &errb, func(k string) string { return env[k] }); code != cmdline.ExitOK {
		t.Fatalf("switchback %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}
