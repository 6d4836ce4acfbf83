package admin

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// newLocalRequest is a request as a loopback client of 127.0.0.1:9180
// sends it.
func newLocalRequest(ctx context.Context, method, path, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(ctx, method, path, rd)
	req.Host = "127.0.0.1:9180"
	req.RemoteAddr = "127.0.0.1:40000"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

const (
	viewerToken   = "viewer-secret-token"
	operatorToken = "operator-secret-token"
	flagsToken    = "flags-secret-token"
)

func writeTokens(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func tokensFile(t *testing.T) string {
	return writeTokens(t, "# admin tokens\n\nwatcher viewer "+HashToken(viewerToken)+"\n"+
		"ops   operator   "+strings.ToUpper(HashToken(operatorToken))+"  \n"+
		"web flags "+HashToken(flagsToken)+" shop\n")
}

func TestHashToken(t *testing.T) {
	// printf %s secret | sha256sum
	if got, want := HashToken("secret"), "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"; got != want {
		t.Errorf("HashToken = %s, want %s", got, want)
	}
}

func TestTokens(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Tokens = tokensFile(t) })
	const shop = "/api/v1/deployments/shop"
	tests := []struct {
		name, method, path, body, auth string
		status                         int
	}{
		{"no token", "GET", shop, "", "", 401},
		{"no token metrics", "GET", "/metrics", "", "", 401},
		{"no token healthz", "GET", "/healthz", "", "", 401},
		{"no token mutation", "POST", shop + "/flip", "{}", "", 401},
		{"unknown token", "GET", shop, "", "Bearer nope", 401},
		{"empty bearer", "GET", shop, "", "Bearer ", 401},
		{"basic auth", "GET", shop, "", "Basic b3BzOm9wcw==", 401},
		{"hash instead of token", "GET", shop, "", "Bearer " + HashToken(viewerToken), 401},
		{"viewer reads", "GET", shop, "", "Bearer " + viewerToken, 200},
		{"viewer reads history", "GET", shop + "/history", "", "Bearer " + viewerToken, 200},
		{"viewer metrics", "GET", "/metrics", "", "Bearer " + viewerToken, 200},
		{"viewer flips", "POST", shop + "/flip", "{}", "Bearer " + viewerToken, 403},
		{"viewer sets weights", "PUT", shop + "/weights", `{"weights":{"green":100}}`, "Bearer " + viewerToken, 403},
		{"viewer deletes flag", "DELETE", shop + "/flags/new-cart", "", "Bearer " + viewerToken, 403},
		{"flags token reads", "GET", shop, "", "Bearer " + flagsToken, 403},
		{"flags token metrics", "GET", "/metrics", "", "Bearer " + flagsToken, 403},
		{"flags token flips", "POST", shop + "/flip", "{}", "Bearer " + flagsToken, 403},
		{"operator reads", "GET", shop, "", "bearer " + operatorToken, 200},
		{"operator flips", "POST", shop + "/flip", `{"reason":"release"}`, "Bearer " + operatorToken, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.current("shop").Meta.Version
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			r := h.do(tt.method, tt.path, tt.body, hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.status >= 400 {
				r.errorBody(t)
				if got := h.current("shop").Meta.Version; got != before {
					t.Errorf("version %d after a refused request, want %d", got, before)
				}
			}
		})
	}
	doc := h.current("shop")
	if doc.Meta.Author != "ops" || doc.Meta.Version != 2 {
		t.Errorf("newest version %d by %q, want 2 by ops", doc.Meta.Version, doc.Meta.Author)
	}
	if rec := h.audit.last(t); rec.Who != "ops" || rec.Role != RoleOperator || rec.Reason != "release" {
		t.Errorf("audit %+v, want ops (operator) with the reason", rec)
	}
}

func TestTokensFileErrors(t *testing.T) {
	hash := HashToken("t")
	tests := []struct {
		name, content, want string
	}{
		{"two fields", "# c\nalice operator\n", ":2: got 2 fields"},
		{"four fields", "alice operator " + hash + " extra\n", ":1: got 4 fields"},
		{"bad role", "\nalice admin " + hash + "\n", `:2: role "admin"`},
		{"deployment on a viewer", "alice viewer " + hash + " shop\n", ":1: got 4 fields"},
		{"bad default deployment", "alice flags " + hash + " sh/op\n", `:1: deployment "sh/op"`},
		{"five fields", "alice flags " + hash + " shop extra\n", ":1: got 5 fields"},
		{"short hash", "alice viewer abc123\n", `:1: token hash "abc123"`},
		{"not hex", "alice viewer " + strings.Repeat("z", 64) + "\n", ":1: token hash"},
		{"bad name", "al/ice viewer " + hash + "\n", `:1: name "al/ice"`},
		{"reserved name", "local viewer " + hash + "\n", `:1: name "local"`},
		{"duplicate name", "alice viewer " + hash + "\nalice operator " + HashToken("u") + "\n", `:2: name "alice" already used on line 1`},
		{"duplicate token", "alice viewer " + hash + "\nbob operator " + hash + "\n", ":2: same token hash as line 1"},
		{"no tokens", "# nobody\n\n", "no tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTokens(t, tt.content)
			_, err := New(Options{Store: etcdtest.NewStore(t), Tokens: path})
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %s and %q", err, path, tt.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := New(Options{Store: etcdtest.NewStore(t), Tokens: filepath.Join(t.TempDir(), "absent")})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v, want one wrapping fs.ErrNotExist", err)
		}
	})
}

func TestLoopbackOnlyWithoutTokens(t *testing.T) {
	store := etcdtest.NewStore(t)
	bootstrap(t, store, shopConfig())
	core, logs := observer.New(zapcore.WarnLevel)
	open, err := New(Options{Store: store, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessageSnippet("no tokens file").Len() != 1 {
		t.Errorf("no warning about running without tokens: %v", logs.All())
	}
	withTokens, err := New(Options{Store: store, Tokens: tokensFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		s      *Server
		remote string
		auth   string
		status int
	}{
		{"loopback v4", open, "127.0.0.1:5000", "", 200},
		{"loopback v4 other", open, "127.8.9.10:5000", "", 200},
		{"loopback v6", open, "[::1]:5000", "", 200},
		{"loopback v4-mapped", open, "[::ffff:127.0.0.1]:5000", "", 200},
		{"remote", open, "203.0.113.5:5000", "", 403},
		{"remote with a token is still refused", open, "203.0.113.5:5000", "Bearer " + operatorToken, 403},
		{"private network", open, "10.0.0.8:5000", "", 403},
		{"garbage address", open, "somewhere", "", 403},
		{"remote with tokens", withTokens, "203.0.113.5:5000", "Bearer " + viewerToken, 200},
		{"loopback with tokens needs one", withTokens, "127.0.0.1:5000", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newLocalRequest(t.Context(), "GET", "/api/v1/deployments/shop", "")
			req.RemoteAddr = tt.remote
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if w := serve(tt.s, req); w.Code != tt.status {
				t.Errorf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
		})
	}
}

func TestHostAllowlist(t *testing.T) {
	store := etcdtest.NewStore(t)
	bootstrap(t, store, shopConfig())
	s, err := New(Options{Store: store, AllowedHosts: []string{"admin.internal", "Gateway.Example:9180", "[fd00::1]"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host   string
		local  string // the address the connection arrived on
		status int
	}{
		{"127.0.0.1:9180", "", 200},
		{"127.0.0.1", "", 200},
		{"localhost:1234", "", 200},
		{"LocalHost", "", 200},
		{"[::1]:9180", "", 200},
		{"admin.internal:443", "", 200},
		{"gateway.example", "", 200},
		{"[fd00::1]:9180", "", 200},
		{"10.1.2.3:9180", "10.1.2.3:9180", 200},
		{"[fd00::2]:9180", "[fd00::2]:9180", 200},
		{"evil.example", "", 421},
		{"evil.example:9180", "127.0.0.1:9180", 421},
		{"localhost.evil.example", "", 421},
		{"10.1.2.4:9180", "10.1.2.3:9180", 421},
		{"", "", 421},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			ctx := t.Context()
			if tt.local != "" {
				ctx = context.WithValue(ctx, http.LocalAddrContextKey, net.TCPAddrFromAddrPort(mustAddrPort(t, tt.local)))
			}
			req := newLocalRequest(ctx, "GET", "/api/v1/deployments/shop", "")
			req.Host = tt.host
			w := serve(s, req)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
		})
	}
	if _, err := New(Options{Store: store, AllowedHosts: []string{"http://x/"}}); err == nil {
		t.Error("a URL as allowed host was accepted")
	}

	// Over real HTTP too: a DNS-rebound name reaching the loopback listener.
	h := newHarness(t, nil)
	if r := h.do("POST", "/api/v1/deployments/shop/flip", "{}", "Host", "attacker.example:9180"); r.status != http.StatusMisdirectedRequest {
		t.Errorf("rebound host: status %d, want 421", r.status)
	}
	if v := h.current("shop").Meta.Version; v != 1 {
		t.Errorf("version %d after a refused request, want 1", v)
	}
}

func TestCrossOrigin(t *testing.T) {
	h := newHarness(t, nil)
	const flip = "/api/v1/deployments/shop/flip"
	self := strings.TrimPrefix(h.srv.URL, "http://")
	tests := []struct {
		name   string
		method string
		hdr    []string
		status int
	}{
		{"cross-site", "POST", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"same-site", "POST", []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"foreign origin, old browser", "POST", []string{"Origin", "http://evil.example"}, 403},
		{"cross-site read", "GET", []string{"Sec-Fetch-Site", "cross-site"}, 200},
		{"same-origin", "POST", []string{"Sec-Fetch-Site", "same-origin"}, 200},
		{"own origin", "POST", []string{"Origin", "http://" + self}, 200},
		{"not a browser", "POST", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.current("shop").Meta.Version
			path, body := flip, "{}"
			if tt.method == "GET" {
				path, body = "/api/v1/deployments/shop", ""
			}
			r := h.do(tt.method, path, body, tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 403 {
				if e := r.errorBody(t); e.Field != "Origin" {
					t.Errorf("field %q, want Origin", e.Field)
				}
				if got := h.current("shop").Meta.Version; got != before {
					t.Errorf("version %d after a cross-origin request, want %d", got, before)
				}
			}
		})
	}
}

func TestHandleExtension(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Tokens = tokensFile(t) })
	caller := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := Caller(r.Context())
		if !ok {
			http.Error(w, "no caller", 500)
			return
		}
		io.WriteString(w, p.Name+" "+string(p.Role))
	})
	h.server.Handle("GET /api/v1/extension-probe", caller, RoleViewer)
	h.server.Handle("POST /api/v1/guard/pause", caller, RoleOperator)
	tests := []struct {
		name, method, path, body, token string
		status                          int
		want                            string
	}{
		{"no token", "GET", "/api/v1/extension-probe", "", "", 401, ""},
		{"viewer", "GET", "/api/v1/extension-probe", "", viewerToken, 200, "watcher viewer"},
		{"viewer mutation", "POST", "/api/v1/guard/pause", "{}", viewerToken, 403, ""},
		{"operator mutation", "POST", "/api/v1/guard/pause", "{}", operatorToken, 200, "ops operator"},
		{"operator mutation not JSON", "POST", "/api/v1/guard/pause", "x", operatorToken, 415, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{}
			if tt.token != "" {
				hdr = append(hdr, "Authorization", "Bearer "+tt.token)
			}
			if tt.body == "x" {
				hdr = append(hdr, "Content-Type", "text/plain")
			}
			r := h.do(tt.method, tt.path, tt.body, hdr...)
			if r.status != tt.status || (tt.want != "" && string(r.body) != tt.want) {
				t.Errorf("got %d %q, want %d %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	r := h.do("GET", "/metrics", "", "Authorization", "Bearer "+viewerToken)
	if want := `switchback_admin_requests_total{code="200",method="GET",route="/api/v1/extension-probe"} 1`; !strings.Contains(string(r.body), want) {
		t.Errorf("metrics lack %s", want)
	}
}

func TestDefaultAuditLogs(t *testing.T) {
	store := etcdtest.NewStore(t)
	bootstrap(t, store, shopConfig())
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := New(Options{Store: store, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	w := serve(s, newLocalRequest(t.Context(), "POST", "/api/v1/deployments/shop/flip", `{"reason":"ship it"}`))
	if w.Code != 200 {
		t.Fatalf("flip: %d %s", w.Code, w.Body)
	}
	entries := logs.FilterMessage("admin change").All()
	if len(entries) != 1 {
		t.Fatalf("%d audit log lines, want 1: %v", len(entries), logs.All())
	}
	f := entries[0].ContextMap()
	if f["who"] != "local" || f["reason"] != "ship it" || f["action"] != "flip" || f["version"] != uint64(2) {
		t.Errorf("audit fields %v", f)
	}
}

func TestSharedRegistry(t *testing.T) {
	store := etcdtest.NewStore(t)
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := New(Options{Store: store, Registry: reg}); err != nil {
			t.Fatalf("second Server on one registry: %v", err)
		}
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func BenchmarkTokenLookup(b *testing.B) {
	ts := &tokenSet{}
	for i := range 20 {
		ts.entries = append(ts.entries, tokenEntry{name: "t", role: RoleViewer, hash: sha256.Sum256([]byte{byte(i)})})
	}
	for b.Loop() {
		ts.lookup("some-presented-token")
	}
}

// TestRefusedMutationsAreAudited: a viewer trying to change routing, and a
// mutation with the wrong content type, leave audit records.
func TestRefusedMutationsAreAudited(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Tokens = tokensFile(t) })
	r := h.do("POST", "/api/v1/deployments/shop/flip", `{}`, "Authorization", "Bearer "+viewerToken)
	if r.status != http.StatusForbidden {
		t.Fatalf("viewer flip: %d %s", r.status, r.body)
	}
	rec := h.audit.last(t)
	if rec.Who != "watcher" || rec.Status != http.StatusForbidden || !strings.Contains(rec.Action, "/flip") {
		t.Errorf("audit %+v, want watcher's refused flip (403)", rec)
	}
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/deployments/shop/flip", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if rec := h.audit.last(t); resp.StatusCode != http.StatusUnsupportedMediaType || rec.Who != "ops" || rec.Status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain flip: %d, audit %+v; want 415 audited for ops", resp.StatusCode, rec)
	}
}

func TestFlagsTokens(t *testing.T) {
	ft, err := LoadFlagsTokens(tokensFile(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token, name, deployment string
		ok                      bool
	}{
		{flagsToken, "web", "shop", true},
		{viewerToken, "", "", false}, // admin roles are not flags tokens
		{operatorToken, "", "", false},
		{"nope", "", "", false},
	}
	for _, tt := range tests {
		name, dep, ok := ft.Lookup(tt.token)
		if name != tt.name || dep != tt.deployment || ok != tt.ok {
			t.Errorf("Lookup(%q) = %q, %q, %v; want %q, %q, %v", tt.token, name, dep, ok, tt.name, tt.deployment, tt.ok)
		}
	}
	if dep, ok := ft.Named("web"); !ok || dep != "shop" {
		t.Errorf("Named(web) = %q, %v; want shop, true", dep, ok)
	}
	if ft.Len() != 1 {
		t.Errorf("Len = %d, want 1", ft.Len())
	}
	if _, ok := ft.Named("ops"); ok {
		t.Error("Named(ops) found an operator token")
	}
}
