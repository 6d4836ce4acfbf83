package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/a8e2c47e/switchback/examples/backend"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
)

func get(t testing.TB, c *http.Client, url string, hdr map[string]string) (backend.Echo, *http.Response) {
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
	var e backend.Echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return e, resp
}

func TestSplitStickinessAndHeaders(t *testing.T) {
	ups := testharness.StartBackends(t)
	base := caddytest.Start(t, "", fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		weights blue 70 green 30
		sticky header X-User-ID
		flag new_payment_flow 10
		flag dark_mode 50
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green)))

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
	ups := testharness.StartBackends(t)
	base := caddytest.Start(t, "", fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		weights blue 50 green 50
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green)))

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
	green := testharness.StartBackend(t, "green", "v2")
	blueSrv := testharness.StartBackend(t, "blue", "v1")
	base := caddytest.Start(t, "", fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live blue
		proxy {
			health_uri /health
			health_interval 50ms
		}
	}`, testharness.HostPort(blueSrv), testharness.HostPort(green)))

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
	testharness.WaitFor(t, "active health check to mark blue down", func() bool {
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
	ups := testharness.StartBackends(t)
	base := caddytest.Start(t, "", fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live blue
		sticky header X-User-ID
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green)))
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
				var e backend.Echo
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
		testharness.WaitFor(t, "requests under the new version", func() bool { return done.Load() >= seen+workers || done.Load() == workers*perWorker })
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
		d, _ := h.decide(snap, w, r)
		gateway.StripClientHeaders(r.Header)
		snap.SetUpstreamHeaders(r.Header, d)
	}
}
