package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/a8e2c47e/switchback/examples/backend"
	"github.com/a8e2c47e/switchback/gateway"
)

// freePort reserves a loopback port for a test server.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCaddy loads a Caddyfile site block into a real Caddy server in this
// process, waits until it answers, and stops it when the test ends. It
// returns the site's base URL.
func startCaddy(t testing.TB, site string) string {
	t.Helper()
	return startCaddyGlobal(t, "", site)
}

// startCaddyGlobal is startCaddy with extra global options.
func startCaddyGlobal(t testing.TB, global, site string) string {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	port := freePort(t)
	src := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n\t%s\n}\nhttp://127.0.0.1:%d {\n%s\n}\n", global, port, site)
	loadCaddyfile(t, src)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, "caddy to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return base
}

// loadCaddyfile adapts a whole Caddyfile and runs it in this process until the
// test ends.
func loadCaddyfile(t testing.TB, src string) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, src)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type upstreams struct {
	blue, green *httptest.Server
}

func startBackends(t testing.TB) upstreams {
	t.Helper()
	u := upstreams{
		blue:  httptest.NewServer(backend.New("blue", "v1")),
		green: httptest.NewServer(backend.New("green", "v2")),
	}
	t.Cleanup(u.blue.Close)
	t.Cleanup(u.green.Close)
	return u
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// echo is what the example backend answers.
type echo struct {
	Pool       string `json:"pool"`
	Release    string `json:"release"`
	Switchback struct {
		Pool    string `json:"pool"`
		Flags   string `json:"flags"`
		Version string `json:"version"`
	} `json:"switchback"`
}

func get(t testing.TB, c *http.Client, url string, hdr map[string]string) (echo, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return e, resp
}

func TestSplitStickinessAndHeaders(t *testing.T) {
	ups := startBackends(t)
	base := startCaddy(t, fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		weights blue 70 green 30
		sticky header X-User-ID
		flag new_payment_flow 10
		flag dark_mode 50
	}`, hostport(ups.blue), hostport(ups.green)))

	// The spec's decision for each user, computed independently of the
	// server from the same document.
	spec, err := gateway.Compile(gateway.Config{
		Name: "checkout", Version: 1,
		Pools:   map[string]gateway.Pool{"blue": {Upstreams: []string{"x:1"}}, "green": {Upstreams: []string{"x:2"}}},
		Weights: map[string]float64{"blue": 70, "green": 30},
		Flags:   map[string]gateway.Flag{"new_payment_flow": {Percent: 10}, "dark_mode": {Percent: 50}},
	})
	if err != nil {
		t.Fatal(err)
	}

	c := &http.Client{}
	const users = 600
	green := 0
	for i := range users {
		user := fmt.Sprintf("user-%d", i)
		e, _ := get(t, c, base+"/", map[string]string{
			"X-User-ID":            user,
			"X-Switchback-Pool":    "green", // spoofed: must be replaced
			"x-switchback-flags":   "everything",
			"X_Switchback_Version": "999",
			"Connection":           "X-Switchback-Version",
		})
		d := spec.Decide(user)
		wantPool := spec.Pools()[d.Pool].Name
		if e.Pool != wantPool || e.Switchback.Pool != wantPool {
			t.Fatalf("%s: served by %s with X-Switchback-Pool %q, want %s", user, e.Pool, e.Switchback.Pool, wantPool)
		}
		if want := spec.FlagsHeader(d.Flags); e.Switchback.Flags != want {
			t.Fatalf("%s: X-Switchback-Flags %q, want %q", user, e.Switchback.Flags, want)
		}
		if e.Switchback.Version != "1" {
			t.Fatalf("%s: X-Switchback-Version %q, want 1", user, e.Switchback.Version)
		}
		if e.Pool == "green" {
			green++
		}
		// Sticky: the same user lands on the same pool again.
		if again, _ := get(t, c, base+"/", map[string]string{"X-User-ID": user}); again.Pool != e.Pool {
			t.Fatalf("%s: first %s, then %s", user, e.Pool, again.Pool)
		}
	}
	// 600 draws at p=0.3: 5 standard deviations is ±9.4%.
	if share := float64(green) / users; share < 0.2 || share > 0.4 {
		t.Errorf("green share %.3f, want about 0.30", share)
	}
}

func TestCookieIssuedAndSticky(t *testing.T) {
	ups := startBackends(t)
	base := startCaddy(t, fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		weights blue 50 green 50
	}`, hostport(ups.blue), hostport(ups.green)))

	c := &http.Client{}
	e, resp := get(t, c, base+"/", nil)
	var issued *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == gateway.DefaultCookie {
			issued = ck
		}
	}
	if issued == nil {
		t.Fatalf("no %s cookie issued; Set-Cookie: %q", gateway.DefaultCookie, resp.Header.Values("Set-Cookie"))
	}
	if len(issued.Value) != 32 || !issued.HttpOnly || issued.SameSite != http.SameSiteLaxMode || issued.Secure {
		t.Errorf("cookie %+v: want 32 hex chars, HttpOnly, SameSite=Lax, not Secure over plain HTTP", issued)
	}
	for range 20 {
		again, resp := get(t, c, base+"/", map[string]string{"Cookie": gateway.DefaultCookie + "=" + issued.Value})
		if again.Pool != e.Pool {
			t.Fatalf("with cookie %s: first %s, then %s", issued.Value, e.Pool, again.Pool)
		}
		if len(resp.Cookies()) != 0 {
			t.Fatalf("cookie issued again to a client that has one: %q", resp.Header.Values("Set-Cookie"))
		}
	}
}

func TestProxyBlockReachesReverseProxy(t *testing.T) {
	// The proxy block configures each pool's reverse_proxy: an active health
	// check set there takes blue's only upstream out when it turns
	// unhealthy, which shows as 503 from blue's reverse_proxy.
	green := httptest.NewServer(backend.New("green", "v2"))
	t.Cleanup(green.Close)
	blueSrv := httptest.NewServer(backend.New("blue", "v1"))
	t.Cleanup(blueSrv.Close)
	base := startCaddy(t, fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live blue
		proxy {
			health_uri /health
			health_interval 50ms
		}
	}`, hostport(blueSrv), hostport(green)))

	c := &http.Client{}
	if e, _ := get(t, c, base+"/", nil); e.Pool != "blue" {
		t.Fatalf("live blue served by %s", e.Pool)
	}
	req, _ := http.NewRequest(http.MethodPut, blueSrv.URL+"/_fault", strings.NewReader(`{"healthy": false}`))
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("set fault: %v %v", err, resp)
	}
	resp.Body.Close()
	waitFor(t, "active health check to mark blue down", func() bool {
		resp, err := c.Get(base + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
}

// TestSwapUnderLoad flips the live pool 50 times while clients send
// requests: no request fails, and each one is served by the pool the gateway
// chose for it under the version it started with.
func TestSwapUnderLoad(t *testing.T) {
	ups := startBackends(t)
	base := startCaddy(t, fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live blue
		sticky header X-User-ID
	}`, hostport(ups.blue), hostport(ups.green)))
	dep, ok := LookupDeployment("checkout")
	if !ok {
		t.Fatal("deployment checkout is not live")
	}
	start := dep.Snapshot().Config()

	const workers, perWorker = 8, 150
	var done atomic.Int64 // requests completed, to interleave flips with traffic
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			c := &http.Client{}
			for i := range perWorker {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/", nil)
				req.Header.Set("X-User-ID", fmt.Sprintf("w%d-%d", w, i))
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				var e echo
				err = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d, decode %v", resp.StatusCode, err)
					return
				}
				done.Add(1)
				if e.Pool != e.Switchback.Pool {
					errs <- fmt.Errorf("decided %s (version %s) but served by %s", e.Switchback.Pool, e.Switchback.Version, e.Pool)
					return
				}
			}
			errs <- nil
		}()
	}

	cfg := start.Clone()
	for i := range 50 {
		cfg.Version = start.Version + uint64(i) + 1
		if i%2 == 0 {
			cfg.Weights = map[string]float64{"blue": 0, "green": 100}
		} else {
			cfg.Weights = map[string]float64{"blue": 100, "green": 0}
		}
		if _, err := dep.Apply(cfg); err != nil {
			t.Fatalf("apply version %d: %v", cfg.Version, err)
		}
		// Let traffic run under this version before the next flip.
		seen := done.Load()
		waitFor(t, "requests under the new version", func() bool { return done.Load() >= seen+workers || done.Load() == workers*perWorker })
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := dep.Snapshot().Version(); got != start.Version+50 {
		t.Errorf("live version %d, want %d", got, start.Version+50)
	}
	// After the last flip (to blue), every new request goes to blue.
	if e, _ := get(t, &http.Client{}, base+"/", map[string]string{"X-User-ID": "after"}); e.Pool != "blue" || e.Switchback.Version != fmt.Sprint(start.Version+50) {
		t.Errorf("after flips: served by %s at version %s, want blue at %d", e.Pool, e.Switchback.Version, start.Version+50)
	}
}

func BenchmarkHandlerDecide(b *testing.B) {
	// The handler's own per-request work, without the proxy: subject,
	// decision, header hygiene.
	h := &Handler{}
	var err error
	h.sticky, err = gateway.ParseSticky("header", "X-User-ID")
	if err != nil {
		b.Fatal(err)
	}
	snap, err := gateway.Compile(gateway.Config{
		Name: "checkout", Version: 1,
		Pools:   map[string]gateway.Pool{"blue": {Upstreams: []string{"x:1"}}, "green": {Upstreams: []string{"x:2"}}},
		Weights: map[string]float64{"blue": 90, "green": 10},
		Flags:   map[string]gateway.Flag{"f": {Percent: 10}},
	})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-User-ID", "user-42")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		d := h.decide(snap, w, r)
		gateway.StripClientHeaders(r.Header)
		snap.SetUpstreamHeaders(r.Header, d)
	}
}
