package backend_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/a8e2c47e/switchback/examples/backend"
)

// start runs a backend behind a real HTTP server for the test.
func start(t *testing.T, pool, release string) (*backend.Server, string) {
	t.Helper()
	b := backend.New(pool, release)
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv.URL
}

// do sends one request and returns the status and body.
func do(t *testing.T, method, url, body string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, got
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, b, err)
	}
	return v
}

func TestEcho(t *testing.T) {
	_, url := start(t, "blue", "v1")
	tests := []struct {
		name     string
		path     string
		header   http.Header
		wantPath string
		wantSB   [3]string // pool, flags, version
	}{
		{name: "no headers", path: "/", wantPath: "/"},
		{name: "any path", path: "/x/y?q=1", wantPath: "/x/y"},
		{
			name: "switchback headers",
			path: "/x",
			header: http.Header{
				"X-Switchback-Pool":    {"green"},
				"X-Switchback-Flags":   {"f1,f2"},
				"X-Switchback-Version": {"7"},
			},
			wantPath: "/x",
			wantSB:   [3]string{"green", "f1,f2", "7"},
		},
		{
			name:     "characters that need escaping",
			path:     "/a%22b%5Cc",
			header:   http.Header{"X-Switchback-Flags": {"\"quoted\"\\\tx"}},
			wantPath: `/a"b\c`,
			wantSB:   [3]string{"", "\"quoted\"\\\tx", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, h, body := do(t, http.MethodGet, url+tt.path, "", tt.header)
			if status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", status, body)
			}
			if got := h.Get("X-Backend-Pool"); got != "blue" {
				t.Errorf("X-Backend-Pool = %q, want blue", got)
			}
			if got := h.Get("X-Backend-Release"); got != "v1" {
				t.Errorf("X-Backend-Release = %q, want v1", got)
			}
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			got := decode[backend.Echo](t, body)
			if got.Pool != "blue" || got.Release != "v1" || got.Path != tt.wantPath {
				t.Errorf("pool, release, path = %q, %q, %q; want blue, v1, %q", got.Pool, got.Release, got.Path, tt.wantPath)
			}
			gotSB := [3]string{got.Switchback.Pool, got.Switchback.Flags, got.Switchback.Version}
			if gotSB != tt.wantSB {
				t.Errorf("switchback = %q, want %q", gotSB, tt.wantSB)
			}
		})
	}
}

func TestEchoJSONShape(t *testing.T) {
	_, url := start(t, "blue", "v1")
	_, _, body := do(t, http.MethodGet, url+"/x", "", nil)
	want := `{"pool":"blue","release":"v1","path":"/x","switchback":{"pool":"","flags":"","version":""}}` + "\n"
	if string(body) != want {
		t.Errorf("body = %s, want %s", body, want)
	}
	// The hand-written body is what encoding/json makes of Echo, so tests
	// that decode it see every field.
	marshalled, err := json.Marshal(backend.Echo{Pool: "blue", Release: "v1", Path: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if string(marshalled)+"\n" != want {
		t.Errorf("backend.Echo marshals to %s, want %s", marshalled, want)
	}
}

func TestFaultSetAndClear(t *testing.T) {
	tests := []struct {
		name  string
		steps []struct{ method, body string }
		want  backend.FaultSettings
	}{
		{
			name: "defaults",
			want: backend.FaultSettings{Latency: "0s", Status: 500, Healthy: true},
		},
		{
			name: "put sets all",
			steps: []struct{ method, body string }{
				{http.MethodPut, `{"error_rate": 0.5, "latency": "200ms", "status": 503, "healthy": false}`},
			},
			want: backend.FaultSettings{ErrorRate: 0.5, Latency: "200ms", Status: 503, Healthy: false},
		},
		{
			name: "put replaces, absent fields take defaults",
			steps: []struct{ method, body string }{
				{http.MethodPut, `{"error_rate": 0.5, "status": 503}`},
				{http.MethodPut, `{"latency": "1s"}`},
			},
			want: backend.FaultSettings{Latency: "1s", Status: 500, Healthy: true},
		},
		{
			name: "post changes only the fields present",
			steps: []struct{ method, body string }{
				{http.MethodPut, `{"error_rate": 0.5, "status": 503}`},
				{http.MethodPost, `{"healthy": false}`},
			},
			want: backend.FaultSettings{ErrorRate: 0.5, Latency: "0s", Status: 503, Healthy: false},
		},
		{
			name: "delete clears",
			steps: []struct{ method, body string }{
				{http.MethodPut, `{"error_rate": 1, "latency": "5ms", "status": 502, "healthy": false}`},
				{http.MethodDelete, ""},
			},
			want: backend.FaultSettings{Latency: "0s", Status: 500, Healthy: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, "blue", "v1")
			var last []byte
			for _, s := range tt.steps {
				status, _, body := do(t, s.method, url+"/_fault", s.body, nil)
				if status != http.StatusOK {
					t.Fatalf("%s %s: status = %d, want 200; body %s", s.method, s.body, status, body)
				}
				last = body
			}
			status, _, body := do(t, http.MethodGet, url+"/_fault", "", nil)
			if status != http.StatusOK {
				t.Fatalf("GET: status = %d, want 200", status)
			}
			if got := decode[backend.FaultSettings](t, body); got != tt.want {
				t.Errorf("GET = %+v, want %+v", got, tt.want)
			}
			if last != nil {
				if got := decode[backend.FaultSettings](t, last); got != tt.want {
					t.Errorf("last change answered %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestFaultValidation(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		body      string
		wantField string
		wantIn    []string // substrings the message must hold
	}{
		{"error_rate above 1", http.MethodPut, `{"error_rate": 1.5}`, "error_rate", []string{"1.5", "0 to 1"}},
		{"error_rate negative", http.MethodPost, `{"error_rate": -0.1}`, "error_rate", []string{"-0.1", "0 to 1"}},
		{"error_rate string", http.MethodPut, `{"error_rate": "half"}`, "error_rate", []string{`"half"`, "number"}},
		{"error_rate null", http.MethodPut, `{"error_rate": null}`, "error_rate", []string{"null"}},
		{"latency not a duration", http.MethodPut, `{"latency": "fast"}`, "latency", []string{`"fast"`, "200ms"}},
		{"latency number", http.MethodPut, `{"latency": 200}`, "latency", []string{"200", "duration"}},
		{"latency negative", http.MethodPut, `{"latency": "-1s"}`, "latency", []string{`"-1s"`, "1m0s"}},
		{"latency too long", http.MethodPut, `{"latency": "2m"}`, "latency", []string{`"2m"`, "1m0s"}},
		{"status not an error", http.MethodPut, `{"status": 200}`, "status", []string{"200", "400 to 599"}},
		{"status too high", http.MethodPut, `{"status": 600}`, "status", []string{"600", "400 to 599"}},
		{"status fractional", http.MethodPut, `{"status": 500.5}`, "status", []string{"500.5", "integer"}},
		{"healthy string", http.MethodPut, `{"healthy": "yes"}`, "healthy", []string{`"yes"`, "true or false"}},
		{"unknown field", http.MethodPut, `{"error_rate": 0.5, "errorrate": 0.5}`, "errorrate", []string{"unknown", "error_rate, latency, status, healthy"}},
		{"one bad field rejects all", http.MethodPost, `{"error_rate": 0.5, "status": 99}`, "status", []string{"99"}},
		{"not an object", http.MethodPut, `[1]`, "", []string{"JSON object"}},
		{"null body", http.MethodPut, `null`, "", []string{"JSON object"}},
		{"empty body", http.MethodPut, ``, "", []string{"JSON object"}},
		{"trailing data", http.MethodPut, `{"status": 503} {"status": 502}`, "", []string{"single JSON object"}},
		{"body too big", http.MethodPut, `{"latency": "` + strings.Repeat("1", 70<<10) + `"}`, "", []string{"bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, "blue", "v1")
			const before = `{"error_rate": 0.25, "latency": "3ms", "status": 502, "healthy": true}`
			if status, _, body := do(t, http.MethodPut, url+"/_fault", before, nil); status != http.StatusOK {
				t.Fatalf("setup: status = %d; body %s", status, body)
			}
			_, _, want := do(t, http.MethodGet, url+"/_fault", "", nil)

			status, h, body := do(t, tt.method, url+"/_fault", tt.body, nil)
			if status != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400; body %s", status, body)
			}
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			got := decode[struct {
				Error string `json:"error"`
				Field string `json:"field"`
			}](t, body)
			if got.Field != tt.wantField {
				t.Errorf("field = %q, want %q; error %q", got.Field, tt.wantField, got.Error)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(got.Error, s) {
					t.Errorf("error = %q, want it to mention %q", got.Error, s)
				}
			}

			if _, _, after := do(t, http.MethodGet, url+"/_fault", "", nil); string(after) != string(want) {
				t.Errorf("settings changed by a rejected body: %s, want %s", after, want)
			}
		})
	}
}

func TestErrorRate(t *testing.T) {
	const n = 200
	tests := []struct {
		name       string
		fault      string
		wantStatus int
	}{
		{"rate 0 never fails", `{"error_rate": 0, "status": 503}`, http.StatusOK},
		{"rate 1 always fails", `{"error_rate": 1, "status": 503}`, http.StatusServiceUnavailable},
		{"default status is 500", `{"error_rate": 1}`, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, url := start(t, "green", "v2")
			if status, _, body := do(t, http.MethodPut, url+"/_fault", tt.fault, nil); status != http.StatusOK {
				t.Fatalf("set fault: status = %d; body %s", status, body)
			}
			var wantErrors uint64
			for range n {
				status, h, body := do(t, http.MethodGet, url+"/", "", nil)
				if status != tt.wantStatus {
					t.Fatalf("status = %d, want %d; body %s", status, tt.wantStatus, body)
				}
				if got := h.Get("X-Backend-Pool"); got != "green" {
					t.Fatalf("X-Backend-Pool = %q, want green", got)
				}
				if status != http.StatusOK {
					wantErrors++
					decode[map[string]string](t, body)
				}
			}
			want := backend.Stats{Requests: n, Errors: wantErrors}
			if got := b.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
			_, _, body := do(t, http.MethodGet, url+"/_stats", "", nil)
			if got := decode[backend.Stats](t, body); got != want {
				t.Errorf("/_stats = %+v, want %+v", got, want)
			}
		})
	}
}

func TestErrorRateFraction(t *testing.T) {
	const n = 2000
	_, url := start(t, "blue", "v1")
	if status, _, body := do(t, http.MethodPut, url+"/_fault", `{"error_rate": 0.5}`, nil); status != http.StatusOK {
		t.Fatalf("set fault: status = %d; body %s", status, body)
	}
	failed := 0
	for range n {
		if status, _, _ := do(t, http.MethodGet, url+"/", "", nil); status != http.StatusOK {
			failed++
		}
	}
	// 2000 draws at p=0.5: the standard deviation is about 22, so 800..1200
	// fails by chance far less than once in a billion runs.
	if failed < 800 || failed > 1200 {
		t.Errorf("%d of %d failed with error_rate 0.5, want about half", failed, n)
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name       string
		fault      string // empty: no change
		wantStatus int
	}{
		{"healthy by default", "", http.StatusOK},
		{"unhealthy", `{"healthy": false}`, http.StatusServiceUnavailable},
		{"errors do not affect health", `{"error_rate": 1}`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, "blue", "v1")
			if tt.fault != "" {
				if status, _, body := do(t, http.MethodPost, url+"/_fault", tt.fault, nil); status != http.StatusOK {
					t.Fatalf("set fault: status = %d; body %s", status, body)
				}
			}
			if status, _, body := do(t, http.MethodGet, url+"/health", "", nil); status != tt.wantStatus {
				t.Errorf("status = %d, want %d; body %s", status, tt.wantStatus, body)
			}
		})
	}
}

func TestHealthToggle(t *testing.T) {
	_, url := start(t, "blue", "v1")
	steps := []struct {
		fault      string
		wantStatus int
	}{
		{`{"healthy": false}`, http.StatusServiceUnavailable},
		{`{"healthy": true}`, http.StatusOK},
		{`{"healthy": false}`, http.StatusServiceUnavailable},
	}
	for _, s := range steps {
		if status, _, body := do(t, http.MethodPost, url+"/_fault", s.fault, nil); status != http.StatusOK {
			t.Fatalf("set %s: status = %d; body %s", s.fault, status, body)
		}
		if status, _, _ := do(t, http.MethodGet, url+"/health", "", nil); status != s.wantStatus {
			t.Errorf("after %s: /health status = %d, want %d", s.fault, status, s.wantStatus)
		}
	}
	do(t, http.MethodDelete, url+"/_fault", "", nil)
	if status, _, _ := do(t, http.MethodGet, url+"/health", "", nil); status != http.StatusOK {
		t.Errorf("after DELETE: /health status = %d, want 200", status)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	_, url := start(t, "blue", "v1")
	tests := []struct {
		method, path, wantAllow string
	}{
		{http.MethodPatch, "/_fault", "GET, HEAD, PUT, POST, DELETE"},
		{http.MethodPost, "/_stats", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, h, _ := do(t, tt.method, url+tt.path, "", nil)
			if status != http.StatusMethodNotAllowed {
				t.Errorf("status = %d, want 405", status)
			}
			if got := h.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	tests := []struct {
		name        string
		fault       string
		path        string
		wantElapsed time.Duration
	}{
		{"echo waits", `{"latency": "200ms"}`, "/", 200 * time.Millisecond},
		{"injected errors wait too", `{"latency": "1s", "error_rate": 1}`, "/", time.Second},
		{"health does not wait", `{"latency": "1s"}`, "/health", 0},
		{"no latency", `{}`, "/", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := backend.New("blue", "v1")
				rec := httptest.NewRecorder()
				b.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/_fault", strings.NewReader(tt.fault)))
				if rec.Code != http.StatusOK {
					t.Fatalf("set fault: status = %d; body %s", rec.Code, rec.Body)
				}
				start := time.Now()
				b.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tt.path, nil))
				if got := time.Since(start); got != tt.wantElapsed {
					t.Errorf("request took %v, want %v", got, tt.wantElapsed)
				}
			})
		})
	}
}

func TestLatencyClientGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := backend.New("blue", "v1")
		b.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPut, "/_fault", strings.NewReader(`{"latency": "1m"}`)))

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		if got := time.Since(start); got != time.Second {
			t.Errorf("request took %v after its client went away at 1s, want 1s", got)
		}
		if rec.Body.Len() != 0 {
			t.Errorf("body = %q, want none for a client that has gone", rec.Body)
		}
	})
}

// BenchmarkServeHTTP measures the echo path as a proxy benchmark drives it.
func BenchmarkServeHTTP(b *testing.B) {
	s := backend.New("blue", "v1")
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	req.Header.Set("X-Switchback-Pool", "green")
	req.Header.Set("X-Switchback-Flags", "f1,f2")
	req.Header.Set("X-Switchback-Version", "42")
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.ServeHTTP(w, req)
	}
}

// discardWriter is a ResponseWriter that costs nothing, so the benchmark
// measures the handler alone.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func TestFaultScopedToFlag(t *testing.T) {
	srv := httptest.NewServer(backend.New("green", "v2"))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/_fault", strings.NewReader(`{"error_rate": 1, "flag": "new_payment_flow"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("set fault: %v %v", err, resp)
	}
	resp.Body.Close()
	tests := []struct {
		flags string
		want  int
	}{
		{"", http.StatusOK},
		{"dark_mode", http.StatusOK},
		{"dark_mode,new_payment_flow", http.StatusInternalServerError},
		{"new_payment_flow", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if tt.flags != "" {
			req.Header.Set("X-Switchback-Flags", tt.flags)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("flags %q: status %d, want %d", tt.flags, resp.StatusCode, tt.want)
		}
	}
}
