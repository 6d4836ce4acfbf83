package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/admin"
	_ "github.com/a8e2c47e/switchback/caddymodule"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
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
	// blue and green are the example backends' URLs, for their faults.
	blue, green string
}

// startGateway runs the gateway until the test ends. Caddy is one per
// process, so tests that call it must not run in parallel.
func startGateway(t testing.TB) *gatewayEnv {
	t.Helper()
	ups := testharness.StartBackends(t)
	etcd := etcdtest.Start(t)

	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	lines := fmt.Sprintf("alice operator %s\nvictor viewer %s\n", admin.HashToken(operatorToken), admin.HashToken(viewerToken))
	if err := os.WriteFile(tokens, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	port, aport := testharness.FreePort(t), testharness.FreePort(t)
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
`, etcd.Endpoint(), aport, tokens, filepath.Join(dir, "state"), port,
		testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green))
	caddytest.Run(t, src)

	env := &gatewayEnv{
		proxy: fmt.Sprintf("http://127.0.0.1:%d", port),
		admin: fmt.Sprintf("http://127.0.0.1:%d", aport),
		blue:  ups.Blue.URL,
		green: ups.Green.URL,
	}
	var err error
	if env.operator, err = admin.NewClient(env.admin, operatorToken); err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "the admin API and the first version", func() bool {
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
	testharness.WaitFor(t, "all traffic on "+pool, func() bool { return e.pools(t)[pool] == 8 })
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
