package configclient_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configclient"
	"github.com/a8e2c47e/switchback/configstore"
)

var testEtcd *configstore.Embedded

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "configclient-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEtcd, err = configstore.StartEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testEtcd.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

// newAPI serves a real admin API on 127.0.0.1 over a store of its own.
func newAPI(t *testing.T) (*configstore.Store, *httptest.Server) {
	t.Helper()
	c, err := testEtcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	store, err := configstore.New(c, configstore.WithPrefix(fmt.Sprintf("/configclient-test/%d", prefixes.Add(1))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := admin.New(admin.Options{Store: store, Audit: func(admin.Record) {}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return store, hs
}

func meta() configstore.Meta {
	return configstore.Meta{Author: "test", Reason: "test", Source: configstore.SourceAPI}
}

type timeouts struct {
	TimeoutMS int `json:"timeout_ms"`
}

// TestRevertReachesEveryWatcher applies a change set over three services,
// reverts it with one call, and checks that watchers of every delivery way
// (long poll, event stream, the Go client in both modes, and switchback
// config watch writing a file) receive the reverted version of each
// service.
func TestRevertReachesEveryWatcher(t *testing.T) {
	// Created first, so it is removed after every watcher writing in it
	// has stopped (cleanups run last first).
	dir := t.TempDir()
	store, hs := newAPI(t)
	ctx := t.Context()
	services := []string{"payments", "search", "ledger"}
	for _, n := range services {
		if _, err := store.PutService(ctx, n, json.RawMessage(`{"timeout_ms": 1000}`), 0, meta()); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := store.ApplyChangeSet(ctx, []configstore.ChangeSpec{
		{Service: "payments", Patch: json.RawMessage(`{"timeout_ms": 2000}`)},
		{Service: "search", Patch: json.RawMessage(`{"timeout_ms": 2000}`)},
		{Service: "ledger", Patch: json.RawMessage(`{"timeout_ms": 2000}`)},
	}, meta())
	if err != nil {
		t.Fatal(err)
	}

	// Every watcher reports each version it sees; the revert is version 3.
	type seen struct {
		who     string
		version uint64
		timeout int
	}
	got := make(chan seen, 256)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for _, n := range services {
		for _, mode := range []configclient.Mode{configclient.Stream, configclient.LongPoll} {
			who := "go-" + string(mode) + "/" + n
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = configclient.Watch(ctx, configclient.Options{URL: hs.URL, Service: n, Mode: mode,
					LastKnownGood: filepath.Join(dir, n+string(mode)+".json")},
					func(cfg timeouts, v configclient.Version) { got <- seen{who, v.Version, cfg.TimeoutMS} })
			}()
			t.Cleanup(func() { <-done })
		}
		wg.Go(func() {
			longPoll(t, hs.URL, n, 2, func(v configclient.Version) { got <- seen{"poll/" + n, v.Version, timeoutOf(v)} })
		})
		streamed := stream(t, hs.URL, n)
		wg.Go(func() {
			for v := range streamed {
				got <- seen{"sse/" + n, v.Version, timeoutOf(v)}
			}
		})
	}
	// The command line's watch writes a file per service.
	files := map[string]string{}
	for _, n := range services {
		file := filepath.Join(dir, n+".json")
		files[n] = file
		wg.Go(func() {
			var out, errb bytes.Buffer
			admin.RunCLI(ctx, []string{"config", "watch", n, "--write", file, "--admin", hs.URL}, &out, &errb, func(string) string { return "" })
		})
	}
	// Wait until every watcher has the change set's version, so the revert
	// is delivered as a change, not as the first state.
	want := map[string]bool{}
	for _, n := range services {
		for _, w := range []string{"go-sse/", "go-poll/", "sse/"} {
			want[w+n] = true
		}
	}
	ready := map[string]bool{}
	for len(ready) < len(want) {
		s := <-got
		if s.version == 2 {
			ready[s.who] = true
		}
	}

	for _, n := range services {
		waitFile(t, files[n], `"timeout_ms": 2000`)
	}
	rev, err := store.RevertChangeSet(ctx, cs.ID, false, meta())
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.Entries) != 3 {
		t.Fatalf("revert entries = %+v", rev.Entries)
	}
	for _, n := range services {
		want["poll/"+n] = true
	}
	reverted := map[string]bool{}
	for len(reverted) < len(want) {
		s := <-got
		if s.version == 3 {
			if s.timeout != 1000 {
				t.Fatalf("%s got version 3 with timeout %d, want 1000", s.who, s.timeout)
			}
			reverted[s.who] = true
		}
	}
	for _, n := range services {
		waitFile(t, files[n], `"timeout_ms": 1000`)
	}
}

// waitFile polls until the file at path contains want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got, _ = os.ReadFile(path); strings.Contains(string(got), want) {
			return
		}
	}
	t.Fatalf("%s = %q, want it to contain %q", path, got, want)
}

func timeoutOf(v configclient.Version) int {
	var c timeouts
	_ = json.Unmarshal(v.Config, &c)
	return c.TimeoutMS
}

// longPoll asks with plain HTTP until it gets a version above after.
func longPoll(t *testing.T, base, name string, after uint64, fn func(configclient.Version)) {
	for t.Context().Err() == nil {
		req, err := http.NewRequestWithContext(t.Context(), "GET", fmt.Sprintf("%s/api/v1/services/%s?wait=30s&after=%d", base, name, after), nil)
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		var v configclient.Version
		ok := resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&v) == nil
		resp.Body.Close()
		if ok {
			fn(v)
			return
		}
	}
}

// stream opens a plain event stream and sends every version it carries.
func stream(t *testing.T, base, name string) <-chan configclient.Version {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", base+"/api/v1/services/"+name+"?follow=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan configclient.Version)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var v configclient.Version
				if json.Unmarshal([]byte(data), &v) == nil {
					select {
					case out <- v:
					case <-t.Context().Done():
						return
					}
				}
			}
		}
	}()
	return out
}

// TestLastKnownGoodAndReconnect starts a watcher while the API fails: it
// gets the version saved in its file at once, and the newer one once the
// API answers.
func TestLastKnownGoodAndReconnect(t *testing.T) {
	dir := t.TempDir()
	store, hs := newAPI(t)
	ctx := t.Context()
	if _, err := store.PutService(ctx, "payments", json.RawMessage(`{"timeout_ms": 1}`), 0, meta()); err != nil {
		t.Fatal(err)
	}
	lkg := filepath.Join(dir, "payments.json")
	saved := `{"name": "payments", "version": 1, "config": {"timeout_ms": 1}}`
	if err := os.WriteFile(lkg, []byte(saved), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutService(ctx, "payments", json.RawMessage(`{"timeout_ms": 2}`), 0, meta()); err != nil {
		t.Fatal(err)
	}
	// The first three requests fail as if the API were down.
	var refused atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refused.Add(1) <= 3 {
			http.Error(w, `{"error": "down"}`, http.StatusServiceUnavailable)
			return
		}
		proxy(w, r, hs.URL)
	}))
	t.Cleanup(flaky.Close)
	got := make(chan int, 8)
	errs := make(chan error, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = configclient.Watch(ctx, configclient.Options{URL: flaky.URL, Service: "payments", LastKnownGood: lkg,
			OnError: func(err error) {
				select {
				case errs <- err:
				default:
				}
			}},
			func(cfg timeouts, _ configclient.Version) { got <- cfg.TimeoutMS })
	}()
	t.Cleanup(func() { <-done })
	if v := <-got; v != 1 {
		t.Fatalf("first config timeout %d, want 1 from the last-known-good file", v)
	}
	if v := <-got; v != 2 {
		t.Fatalf("second config timeout %d, want 2 from the API", v)
	}
	if len(errs) == 0 {
		t.Fatal("no error reported while the API was down")
	}
	b, err := os.ReadFile(lkg)
	if err != nil || !strings.Contains(string(b), `"timeout_ms":2`) {
		t.Fatalf("last-known-good file = %s, %v; want version 2", b, err)
	}
}

// proxy forwards one request to base and streams the answer back.
func proxy(w http.ResponseWriter, r *http.Request, base string) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	rc := http.NewResponseController(w)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// TestGrayInstance: an instance in a gray release gets the gray document
// through the Go client, one outside it the main one.
func TestGrayInstance(t *testing.T) {
	store, hs := newAPI(t)
	ctx := t.Context()
	if _, err := store.PutService(ctx, "payments", json.RawMessage(`{"timeout_ms": 1}`), 0, meta()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.StartGray(ctx, "payments", json.RawMessage(`{"timeout_ms": 2}`), 50, 0, meta()); err != nil {
		t.Fatal(err)
	}
	doc, err := store.GetService(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		id := fmt.Sprintf("pod-%d", i)
		_, gray := doc.For(id)
		want := 1
		if gray {
			want = 2
		}
		wctx, cancel := context.WithCancel(ctx)
		got := make(chan int, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = configclient.Watch(wctx, configclient.Options{URL: hs.URL, Service: "payments", Instance: id},
				func(cfg timeouts, v configclient.Version) {
					select {
					case got <- cfg.TimeoutMS:
					default:
					}
				})
		}()
		v := <-got
		cancel()
		<-done
		if v != want {
			t.Fatalf("%s got timeout %d, want %d (gray %v)", id, v, want, gray)
		}
	}
}
