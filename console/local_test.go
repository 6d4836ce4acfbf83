package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/console"
	"github.com/a8e2c47e/switchback/gateway"
)

// localAdmin is an admin API without a tokens file, with the console
// mounted, on a real embedded etcd holding one deployment, "shop", with the
// given number of versions.
func localAdmin(tb testing.TB, versions int) (http.Handler, *configstore.Store) {
	tb.Helper()
	return localAdminWith(tb, versions, nil)
}

// localAdminWith is localAdmin with options of the admin API set by opts
// once the store exists.
func localAdminWith(tb testing.TB, versions int, opts func(*configstore.Store, *admin.Options)) (http.Handler, *configstore.Store) {
	tb.Helper()
	etcd, err := configstore.StartEmbedded(tb.TempDir(), "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { etcd.Close() })
	c, err := etcd.Client()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	store, err := configstore.New(c)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	ctx := context.Background()
	cfg := gateway.Config{
		Name: "shop",
		Pools: map[string]gateway.Pool{
			"blue":  {Upstreams: []string{"127.0.0.1:9001"}, Release: "v1.0.0"},
			"green": {Upstreams: []string{"127.0.0.1:9002"}, Release: "v1.1.0"},
		},
		Weights: map[string]float64{"blue": 100, "green": 0},
		Flags:   map[string]gateway.Flag{"new_cart": {Percent: 10}, "dark_mode": {Percent: 0}},
	}
	if _, _, err := store.Bootstrap(ctx, cfg, configstore.Meta{Author: "test", Source: configstore.SourceBootstrap, Reason: "first"}); err != nil {
		tb.Fatal(err)
	}
	for i := 2; i <= versions; i++ {
		_, err := store.Update(ctx, "shop", 0, configstore.Meta{Author: "bench", Source: configstore.SourceCLI, Reason: fmt.Sprintf("step %d", i)},
			func(c *gateway.Config) error {
				c.Flags["new_cart"] = gateway.Flag{Percent: float64(i % 100)}
				return nil
			})
		if err != nil {
			tb.Fatal(err)
		}
	}
	o := admin.Options{Store: store}
	if opts != nil {
		opts(store, &o)
	}
	api, err := admin.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	ui, err := console.New(console.Options{API: api})
	if err != nil {
		tb.Fatal(err)
	}
	api.Mount(console.Prefix, ui)
	return api, store
}

func request(h http.Handler, method, target, remote string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, target, body)
	req.Host = "localhost"
	req.RemoteAddr = remote
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const loopback = "127.0.0.1:50000"

// Without a tokens file the console, like the API, serves loopback clients
// only, as the local operator, and refuses foreign Hosts and cross-origin
// posts at the API's gate.
func TestConsoleWithoutTokens(t *testing.T) {
	h, store := localAdmin(t, 1)
	csrf := func() string {
		rec := request(h, http.MethodGet, "/ui/deployments/shop/confirm?action=flip", loopback, nil, nil)
		body := rec.Body.String()
		const marker = `name="csrf" value="`
		i := strings.Index(body, marker)
		if i < 0 {
			return ""
		}
		rest := body[i+len(marker):]
		return rest[:strings.IndexByte(rest, '"')]
	}
	tests := []struct {
		name, method, target, remote string
		form                         url.Values
		hdr                          map[string]string
		want                         int
		contains                     string
	}{
		{"loopback sees the controls", http.MethodGet, "/ui/deployments/shop", loopback, nil, nil, http.StatusOK, `value="flip"`},
		{"bare /ui redirects", http.MethodGet, "/ui", loopback, nil, nil, http.StatusMovedPermanently, ""},
		{"strict CSP", http.MethodGet, "/ui/", loopback, nil, nil, http.StatusOK, "shop"},
		{"remote client refused", http.MethodGet, "/ui/", "192.0.2.7:40000", nil, nil, http.StatusForbidden, "only serves browsers on this host"},
		{"foreign Host refused", http.MethodGet, "/ui/", loopback, nil, map[string]string{"Host": "evil.example"}, http.StatusMisdirectedRequest, ""},
		{"cross-origin post refused", http.MethodPost, "/ui/deployments/shop/apply", loopback,
			url.Values{"action": {"flip"}, "reason": {"x"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "cross-origin"},
		{"post without form token refused", http.MethodPost, "/ui/deployments/shop/apply", loopback,
			url.Values{"action": {"flip"}, "reason": {"x"}}, nil, http.StatusForbidden, "out of date"},
		{"post without reason refused", http.MethodPost, "/ui/deployments/shop/apply", loopback,
			url.Values{"action": {"flip"}, "csrf": {csrf()}}, nil, http.StatusBadRequest, "Reason"},
		{"bad percent names the field", http.MethodGet, "/ui/deployments/shop/confirm?action=flag&flag=new_cart&percent=120", loopback, nil, nil,
			http.StatusBadRequest, "percent of flag new_cart &#34;120&#34;: want a number from 0 to 100"},
		{"unknown action names it", http.MethodGet, "/ui/deployments/shop/confirm?action=explode", loopback, nil, nil,
			http.StatusBadRequest, "action &#34;explode&#34;: want one of"},
		{"history page zero", http.MethodGet, "/ui/deployments/shop/history?page=0", loopback, nil, nil,
			http.StatusBadRequest, "want a page number"},
		{"history page past the end", http.MethodGet, "/ui/deployments/shop/history?page=3", loopback, nil, nil,
			http.StatusNotFound, "the history has 1 versions"},
		{"unknown deployment", http.MethodGet, "/ui/deployments/nope", loopback, nil, nil, http.StatusNotFound, "nope"},
		{"flash shows versions only", http.MethodGet, "/ui/deployments/shop?wrote=1%20(call%20555)&rollout=hacked", loopback, nil, nil, http.StatusOK, "<h1>shop</h1>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr map[string]string
			req := func() *httptest.ResponseRecorder {
				if host, ok := tt.hdr["Host"]; ok {
					r := httptest.NewRequest(tt.method, tt.target, nil)
					r.Host, r.RemoteAddr = host, tt.remote
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					return rec
				}
				hdr = tt.hdr
				return request(h, tt.method, tt.target, tt.remote, tt.form, hdr)
			}
			rec := req()
			if rec.Code != tt.want {
				t.Fatalf("%s %s: status %d, want %d\n%s", tt.method, tt.target, rec.Code, tt.want, rec.Body.String())
			}
			if strings.Contains(rec.Body.String(), "555") || strings.Contains(rec.Body.String(), "hacked") {
				t.Errorf("%s %s: the page repeats text from its link:\n%s", tt.method, tt.target, rec.Body.String())
			}
			if tt.contains != "" && !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("%s %s: answer lacks %q:\n%s", tt.method, tt.target, tt.contains, rec.Body.String())
			}
			if rec.Code == http.StatusOK {
				csp := rec.Header().Get("Content-Security-Policy")
				if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
					t.Errorf("Content-Security-Policy %q, want default-src 'none', script-src 'self' and nothing unsafe", csp)
				}
			}
		})
	}
	d, err := store.Get(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if d.Meta.Version != 1 {
		t.Errorf("version %d after refused posts, want 1", d.Meta.Version)
	}

	// The local operator's flip goes through the API, audited as "local".
	rec := request(h, http.MethodPost, "/ui/deployments/shop/apply", loopback,
		url.Values{"action": {"flip"}, "reason": {"ship"}, "csrf": {csrf()}, "if_match": {"1"}}, nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/deployments/shop?wrote=2" {
		t.Fatalf("flip: status %d Location %q, want 303 to ?wrote=2\n%s", rec.Code, rec.Header().Get("Location"), rec.Body.String())
	}
	d, err = store.Get(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if d.Meta.Author != "local" || d.Meta.Reason != "ship" || d.Config.Weights["green"] != 100 {
		t.Errorf("after flip: author %q reason %q weights %v, want local, ship, green 100", d.Meta.Author, d.Meta.Reason, d.Config.Weights)
	}
	// A dialog opened on version 1 writes nothing once version 2 exists.
	rec = request(h, http.MethodPost, "/ui/deployments/shop/apply", loopback,
		url.Values{"action": {"flip"}, "reason": {"stale"}, "csrf": {csrf()}, "if_match": {"1"}}, nil)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "nothing was written") {
		t.Errorf("stale flip: status %d, want 409 saying nothing was written\n%s", rec.Code, rec.Body.String())
	}
}

// BenchmarkHistoryPage renders history pages of a deployment with 1,000
// versions: the first page and the last (which reads all 1,000 from the
// API).
func BenchmarkHistoryPage(b *testing.B) {
	h, _ := localAdmin(b, 1000)
	for _, page := range []int{1, 20} {
		b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
			target := fmt.Sprintf("/ui/deployments/shop/history?page=%d", page)
			for b.Loop() {
				if rec := request(h, http.MethodGet, target, loopback, nil, nil); rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
				}
			}
		})
	}
}

// BenchmarkDeploymentPage renders the deployment page and the diff page
// of a deployment with 1,000 versions.
func BenchmarkDeploymentPage(b *testing.B) {
	h, _ := localAdmin(b, 1000)
	for _, target := range []string{"/ui/deployments/shop", "/ui/deployments/shop/diff?from=1&to=1000", "/ui/"} {
		b.Run(target, func(b *testing.B) {
			for b.Loop() {
				if rec := request(h, http.MethodGet, target, loopback, nil, nil); rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
				}
			}
		})
	}
}

// History pages hold 50 versions each, newest first, and link to the
// next older page while there is one.
func TestHistoryPages(t *testing.T) {
	h, _ := localAdmin(t, 120)
	tests := []struct {
		page         int
		first, last  int
		older, newer bool
	}{
		{1, 120, 71, true, false},
		{2, 70, 21, true, true},
		{3, 20, 1, false, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("page ", tt.page), func(t *testing.T) {
			rec := request(h, http.MethodGet, fmt.Sprintf("/ui/deployments/shop/history?page=%d", tt.page), loopback, nil, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d\n%s", rec.Code, rec.Body.String())
			}
			body := rec.Body.String()
			var rows []int
			for _, part := range strings.Split(body, `<th scope="row">`)[1:] {
				var v int
				if _, err := fmt.Sscanf(part, "%d", &v); err == nil {
					rows = append(rows, v)
				}
			}
			if len(rows) == 0 {
				t.Fatalf("page %d lists no versions", tt.page)
			}
			if len(rows) != tt.first-tt.last+1 || rows[0] != tt.first || rows[len(rows)-1] != tt.last {
				t.Errorf("page %d lists %d versions from %v to %v, want %d to %d", tt.page, len(rows), rows[0], rows[len(rows)-1], tt.first, tt.last)
			}
			if got := strings.Contains(body, "Older versions"); got != tt.older {
				t.Errorf("page %d links older versions: %v, want %v", tt.page, got, tt.older)
			}
			if got := strings.Contains(body, "Newer versions"); got != tt.newer {
				t.Errorf("page %d links newer versions: %v, want %v", tt.page, got, tt.newer)
			}
			if got := strings.Count(body, ">Restore version "); got != len(rows)-boolInt(tt.page == 1) {
				t.Errorf("page %d has %d Restore buttons, want one per row but the live one", tt.page, got)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSplitOffersAllTrafficTo: from a split the API's flip refuses (promote
// or roll back is the operator's call), so the page offers "All traffic to
// P" for each pool instead, through the same dialog, written as weights.
func TestSplitOffersAllTrafficTo(t *testing.T) {
	h, store := localAdmin(t, 1)
	if _, err := store.Update(t.Context(), "shop", 0, configstore.Meta{Author: "test", Source: configstore.SourceCLI, Reason: "canary"},
		func(c *gateway.Config) error { c.Weights = map[string]float64{"blue": 90, "green": 10}; return nil }); err != nil {
		t.Fatal(err)
	}
	page := request(h, http.MethodGet, "/ui/deployments/shop", loopback, nil, nil).Body.String()
	for _, want := range []string{`value="flip" class="primary" disabled`, "Traffic is split", ">All traffic to blue</button>", ">All traffic to green</button>"} {
		if !strings.Contains(page, want) {
			t.Errorf("deployment page at 90/10 lacks %q", want)
		}
	}
	rec := request(h, http.MethodGet, "/ui/deployments/shop/confirm?action=to&pool=blue", loopback, nil, nil)
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "All traffic of shop to blue") || !strings.Contains(body, "weights.green") {
		t.Fatalf("confirm: status %d, want the dialog with the weights diff:\n%s", rec.Code, body)
	}
	const marker = `name="csrf" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatal("confirm dialog has no form token")
	}
	csrf := body[i+len(marker):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	form := url.Values{"action": {"to"}, "pool": {"blue"}, "if_match": {"2"}, "reason": {"green misbehaves"}, "csrf": {csrf}}
	if rec := request(h, http.MethodPost, "/ui/deployments/shop/apply", loopback, form, nil); rec.Code >= 400 {
		t.Fatalf("apply: status %d\n%s", rec.Code, rec.Body.String())
	}
	doc, err := store.Get(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Config.Weights; got["blue"] != 100 || got["green"] != 0 || doc.Meta.Reason != "green misbehaves" {
		t.Errorf("after All traffic to blue: weights %v, reason %q; want blue 100, green 0, the reason given", got, doc.Meta.Reason)
	}
	if rec := request(h, http.MethodGet, "/ui/deployments/shop/confirm?action=to&pool=red", loopback, nil, nil); rec.Code != http.StatusNotFound {
		t.Errorf("confirm for an unknown pool: status %d, want 404", rec.Code)
	}
}
