package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// Pages mounted with Mount sign their callers in themselves, so they run
// without a bearer token, but behind the same Host and cross-origin checks
// as the API.
func TestMount(t *testing.T) {
	store := etcdtest.NewStore(t)
	bootstrap(t, store, shopConfig())
	s, err := New(Options{Store: store, Tokens: tokensFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.Mount("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "page "+r.Method+" "+r.URL.Path)
	}))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	tests := []struct {
		name, method, path string
		hdr                map[string]string
		want               int
		body               string
	}{
		{"page without a token", http.MethodGet, "/ui/deployments/shop", nil, http.StatusOK, "page GET /ui/deployments/shop"},
		{"same-origin post", http.MethodPost, "/ui/x", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK, "page POST /ui/x"},
		{"bare prefix redirects", http.MethodGet, "/ui", nil, http.StatusMovedPermanently, ""},
		{"foreign Host", http.MethodGet, "/ui/", map[string]string{"Host": "evil.example"}, http.StatusMisdirectedRequest, "not allowed"},
		{"cross-origin post", http.MethodPost, "/ui/x", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "cross-origin"},
		{"the API still needs a token", http.MethodGet, "/api/v1/deployments", nil, http.StatusUnauthorized, "missing token"},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.hdr {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.body) {
				t.Errorf("%s %s: %d %q, want %d with %q", tt.method, tt.path, resp.StatusCode, b, tt.want, tt.body)
			}
		})
	}
}

func TestSignIn(t *testing.T) {
	store := etcdtest.NewStore(t)
	with, err := New(Options{Store: store, Tokens: tokensFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	without, err := New(Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		s      *Server
		token  string
		want   Principal
		wantOK bool
	}{
		{"operator", with, operatorToken, Principal{Name: "ops", Role: RoleOperator}, true},
		{"viewer, pasted with a newline", with, viewerToken + "\n", Principal{Name: "watcher", Role: RoleViewer}, true},
		{"unknown token", with, "guess", Principal{}, false},
		{"empty token", with, "", Principal{}, false},
		{"no tokens file", without, operatorToken, Principal{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.s.SignIn(tt.token)
			if !reflect.DeepEqual(got, tt.want) || ok != tt.wantOK {
				t.Errorf("SignIn(%q) = %+v, %v; want %+v, %v", tt.token, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if !with.HasTokens() || without.HasTokens() {
		t.Errorf("HasTokens: with a file %v, without %v; want true, false", with.HasTokens(), without.HasTokens())
	}
	if !reflect.DeepEqual(Local(), localPrincipal) {
		t.Errorf("Local() = %+v, want %+v", Local(), localPrincipal)
	}
}
