package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

const (
	ofrepOpsToken   = "ops-token-for-the-ofrep-test"
	ofrepFlagsToken = "flags-token-for-the-ofrep-test"
)

// ofrepFlags are the test deployment's flags, in name order, and the
// reason each answers with.
var ofrepFlags = []struct{ name, reason string }{
	{"beta", "SPLIT"},
	{"dark_mode", "STATIC"},
	{"everyone", "STATIC"},
	{"new_payment_flow", "SPLIT"},
}

// ofrepGateway is a real gateway (Caddy, embedded etcd, the admin API and
// the OFREP listener, with tokens) serving deployment checkout.
type ofrepGateway struct {
	base, admin, ofrep string
	src                string // the whole Caddyfile, for a reload
}

func startOFREPGateway(tb testing.TB) ofrepGateway {
	tb.Helper()
	e := etcdtest.Start(tb)
	ups := testharness.StartBackends(tb)
	tokens := filepath.Join(tb.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("ops operator "+admin.HashToken(ofrepOpsToken)+"\n"+
		"web flags "+admin.HashToken(ofrepFlagsToken)+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	aport, oport := testharness.FreePort(tb), testharness.FreePort(tb)
	global := fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin 127.0.0.1:%d\n\t\tadmin_tokens %s\n\t\tofrep 127.0.0.1:%d\n\t\tstate_dir %s\n\t}",
		e.Endpoint(), aport, tokens, oport, tb.TempDir())
	site := fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		weights blue 90 green 10
		sticky header X-User-ID
		flag beta 50
		flag dark_mode 0
		flag everyone 100
		flag new_payment_flow 10
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green))
	g := ofrepGateway{
		base:  caddytest.Start(tb, global, site),
		admin: fmt.Sprintf("http://127.0.0.1:%d", aport),
		ofrep: fmt.Sprintf("http://127.0.0.1:%d", oport),
	}
	g.src = fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n\t%s\n}\nhttp://%s {\n%s\n}\n",
		global, strings.TrimPrefix(g.base, "http://"), site)
	testharness.WaitFor(tb, "OFREP to listen", func() bool {
		resp, err := http.Post(g.ofrep+"/ofrep/v1/evaluate/flags", "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return g
}

// setFlag sets a flag through the admin API, as an operator would.
func (g ofrepGateway) setFlag(tb testing.TB, flag string, percent float64) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPut, g.admin+"/api/v1/deployments/checkout/flags/"+flag,
		strings.NewReader(fmt.Sprintf(`{"percent": %v, "reason": "ofrep test"}`, percent)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ofrepOpsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("set %s to %v%%: %d %s", flag, percent, resp.StatusCode, b)
	}
}

// nodeClients is the folder of the OpenFeature clients' script, or a skip
// when node or its packages are missing.
func nodeClients(tb testing.TB) string {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "ofrep", "testdata", "node"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		tb.Skip("node is not installed: the OpenFeature client tests need Node 20 or newer")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@openfeature", "ofrep-web-provider")); err != nil {
		tb.Skipf("the OpenFeature clients are not installed: run 'npm ci' in %s (.ci/run does)", dir)
	}
	return dir
}

func node(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "node", append([]string{"clients.mjs"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OFREP_TOKEN="+ofrepFlagsToken)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

type sdkAnswer struct {
	Value   bool    `json:"value"`
	Reason  string  `json:"reason"`
	Variant *string `json:"variant"`
	Version *uint64 `json:"version"`
	Error   *string `json:"error"`
}

type serverRun struct {
	Flags    []string `json:"flags"`
	Subjects []struct {
		Key     string      `json:"key"`
		Answers []sdkAnswer `json:"answers"`
	} `json:"subjects"`
	Evaluations int       `json:"evaluations"`
	Seconds     float64   `json:"seconds"`
	MissingKey  sdkAnswer `json:"missingKey"`
	UnknownFlag sdkAnswer `json:"unknownFlag"`
}

// TestOFREPWithOpenFeatureClients checks OpenFeature's own clients against
// a real gateway: for 10,000 subjects the server SDK answers what the
// gateway decides (Decide on the live snapshot for all of them, and the
// X-Switchback-Flags the upstream receives for a sample), and the web SDK
// hears of a kill through the event stream.
func TestOFREPWithOpenFeatureClients(t *testing.T) {
	dir := nodeClients(t)
	g := startOFREPGateway(t)
	dep, ok := LookupDeployment("checkout")
	if !ok {
		t.Fatal("deployment checkout is not live")
	}
	snap := dep.Snapshot()

	const subjects = 10000
	args := []string{"server", g.ofrep, fmt.Sprint(subjects)}
	for _, f := range ofrepFlags {
		args = append(args, f.name)
	}
	var stderr bytes.Buffer
	cmd := node(t.Context(), dir, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var run serverRun
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("node output: %v\n%.500s", err, out)
	}
	if len(run.Subjects) != subjects {
		t.Fatalf("%d subjects answered, want %d", len(run.Subjects), subjects)
	}
	t.Logf("server SDK: %d evaluations in %.2fs (%.0f/s, one at a time per worker, 16 workers)",
		run.Evaluations, run.Seconds, float64(run.Evaluations)/run.Seconds)

	names := snap.FlagNames()
	for i, f := range ofrepFlags {
		if names[i] != f.name {
			t.Fatalf("flag %d is %s, want %s", i, names[i], f.name)
		}
	}
	mismatches := 0
	for _, s := range run.Subjects {
		d := snap.Decide(s.Key)
		for i, a := range s.Answers {
			on := d.Flags&(1<<i) != 0
			variant := "off"
			if on {
				variant = "on"
			}
			if a.Error != nil || a.Value != on || a.Reason != ofrepFlags[i].reason || a.Variant == nil || *a.Variant != variant ||
				a.Version == nil || *a.Version != snap.Version() {
				if mismatches++; mismatches <= 5 {
					t.Errorf("%s %s: SDK answered %+v, gateway decides %v (%s) at version %d", s.Key, names[i], a, on, ofrepFlags[i].reason, snap.Version())
				}
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d answers differ from the gateway's decision", mismatches, subjects*len(names))
	}

	// What the upstream receives for a sample of the same subjects.
	client := &http.Client{}
	for n := 0; n < subjects; n += 50 {
		s := run.Subjects[n]
		e, _ := get(t, client, g.base+"/", map[string]string{"X-User-ID": s.Key})
		var want []string
		for i, a := range s.Answers {
			if a.Value {
				want = append(want, names[i])
			}
		}
		if e.Switchback.Flags != strings.Join(want, ",") || e.Switchback.Version != fmt.Sprint(snap.Version()) {
			t.Errorf("%s: upstream got X-Switchback-Flags %q version %s, the SDK answered %q version %d",
				s.Key, e.Switchback.Flags, e.Switchback.Version, strings.Join(want, ","), snap.Version())
		}
	}

	if a := run.MissingKey; a.Error == nil || *a.Error != "TARGETING_KEY_MISSING" || a.Value {
		t.Errorf("no targeting key: SDK answered %+v, want the default with TARGETING_KEY_MISSING", a)
	}
	if a := run.UnknownFlag; a.Error == nil || *a.Error != "FLAG_NOT_FOUND" || a.Value {
		t.Errorf("unknown flag: SDK answered %+v, want the default with FLAG_NOT_FOUND", a)
	}

	t.Run("web provider sees a kill", func(t *testing.T) {
		lat := killSeenByWebProvider(t, g, dir)
		t.Logf("kill seen by the web provider %v after the admin API was called (the benchmark tracks it)", lat)
	})
}

type webLine struct {
	Ready   bool   `json:"ready"`
	Stream  string `json:"stream"`
	Value   bool   `json:"value"`
	Reason  string `json:"reason"`
	Changed *struct {
		At      int64   `json:"at"`
		Value   bool    `json:"value"`
		Reason  string  `json:"reason"`
		Version *uint64 `json:"version"`
	} `json:"changed"`
}

// killSeenByWebProvider starts the web SDK on flag everyone (100%), kills
// the flag through the admin API once the provider's event stream is open,
// and returns how long after the admin call the provider saw it off. The
// flag is back at 100% when it returns.
func killSeenByWebProvider(tb testing.TB, g ofrepGateway, dir string) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := node(ctx, dir, "web", g.ofrep, "watcher", "everyone")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	lines := make(chan webLine)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l webLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				select {
				case lines <- l:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	read := func(what string) webLine {
		select {
		case l, ok := <-lines:
			if !ok {
				tb.Fatalf("web client ended before %s: %s", what, stderr.String())
			}
			return l
		case <-time.After(20 * time.Second):
			tb.Fatalf("web client: no %s within 20s: %s", what, stderr.String())
		}
		return webLine{}
	}
	ready := read("ready line")
	if !ready.Ready || !ready.Value || ready.Reason != "STATIC" || !strings.HasPrefix(ready.Stream, "/ofrep/v1/events") {
		tb.Fatalf("web client before the kill: %+v, want everyone on (STATIC) and an open stream", ready)
	}
	killed := time.Now()
	g.setFlag(tb, "everyone", 0)
	seen := read("change")
	defer g.setFlag(tb, "everyone", 100)
	if c := seen.Changed; c == nil || c.Value || c.Reason != "DISABLED" {
		tb.Fatalf("web client after the kill: %+v, want everyone off, DISABLED", seen)
	}
	return time.UnixMilli(seen.Changed.At).Sub(killed)
}

// BenchmarkOFREPKillSeenByWebProvider is the time from an operator's kill
// (the admin API call) to the OpenFeature web provider's
// ConfigurationChanged with the flag off: store write, watch, apply, event
// stream, refetch. One node process per op; run with -benchtime 1x..5x.
func BenchmarkOFREPKillSeenByWebProvider(b *testing.B) {
	dir := nodeClients(b)
	g := startOFREPGateway(b)
	var total time.Duration
	n := 0
	for b.Loop() {
		total += killSeenByWebProvider(b, g, dir)
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/kill")
}

// evaluate asks the OFREP listener for one flag with the given headers.
func (g ofrepGateway) evaluate(tb testing.TB, flag, subject string, hdr map[string]string) (int, map[string]any) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.ofrep+"/ofrep/v1/evaluate/flags/"+flag,
		strings.NewReader(fmt.Sprintf(`{"context": {"targetingKey": %q}}`, subject)))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		tb.Fatalf("%s: %d, body: %v", flag, resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

// TestOFREPListener checks the listener without Node: flags tokens (and
// that they open no admin route), a kill answering DISABLED, and a config
// reload that keeps the listener and, through the store's history, the
// DISABLED.
func TestOFREPListener(t *testing.T) {
	g := startOFREPGateway(t)
	flags := map[string]string{"X-API-Key": ofrepFlagsToken}

	if status, body := g.evaluate(t, "everyone", "alice", nil); status != http.StatusUnauthorized {
		t.Errorf("no token: %d %v, want 401", status, body)
	}
	if status, body := g.evaluate(t, "everyone", "alice", map[string]string{"Authorization": "Bearer " + ofrepOpsToken}); status != http.StatusUnauthorized {
		t.Errorf("operator token: %d %v, want 401 (OFREP takes flags tokens only)", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, g.admin+"/api/v1/deployments/checkout", nil)
	req.Header.Set("Authorization", "Bearer "+ofrepFlagsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("flags token on the admin API: %d, want 403", resp.StatusCode)
	}

	status, body := g.evaluate(t, "everyone", "alice", flags)
	if status != http.StatusOK || body["value"] != true || body["reason"] != "STATIC" {
		t.Fatalf("everyone before the kill: %d %v", status, body)
	}
	g.setFlag(t, "everyone", 0)
	testharness.WaitFor(t, "the kill to reach OFREP", func() bool {
		_, body := g.evaluate(t, "everyone", "alice", flags)
		return body["value"] == false && body["reason"] == "DISABLED"
	})
	if _, body := g.evaluate(t, "dark_mode", "alice", flags); body["reason"] != "STATIC" {
		t.Errorf("dark_mode, never on: %v, want STATIC", body)
	}

	// A reload starts a new app and a new OFREP server on the same address;
	// the kill is in the store's history, so it still answers DISABLED.
	caddytest.Run(t, g.src)
	testharness.WaitFor(t, "OFREP after the reload to answer DISABLED", func() bool {
		status, body := g.evaluate(t, "everyone", "alice", flags)
		return status == http.StatusOK && body["reason"] == "DISABLED" && body["value"] == false
	})
	if got := runningApp(t).ofrepAddr(); "http://"+got != g.ofrep {
		t.Errorf("OFREP listens on %s after the reload, want %s", got, g.ofrep)
	}
}

// With the embedded store's data damaged and last-known-good serving opted
// in, OFREP answers from the last-known-good version like the proxy does.
func TestOFREPOnDamagedData(t *testing.T) {
	ups := testharness.StartBackends(t)
	dataDir, stateDir := t.TempDir(), t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	site := strings.Replace(siteWithStore(ups, "blue"), "sticky header X-User-ID", "sticky header X-User-ID\n\t\tflag beta 30", 1)
	caddytest.Start(t, embeddedGlobal(dataDir, addr, stateDir, ""), site)
	store := etcdtest.Dial(t, "http://"+addr)
	if _, err := store.Update(t.Context(), "checkout", 1, configstore.Meta{Author: "test", Source: configstore.SourceAPI, Reason: "more beta"},
		func(c *gateway.Config) error { c.Flags["beta"] = gateway.Flag{Percent: 60}; return nil }); err != nil {
		t.Fatal(err)
	}
	waitForLastKnownGood(t, stateDir, "checkout", 2)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	cutWAL(t, dataDir)

	oport := testharness.FreePort(t)
	global := strings.Replace(embeddedGlobal(dataDir, addr, stateDir, "serve_last_known_good"), "\t}", fmt.Sprintf("\t\tofrep 127.0.0.1:%d\n\t}", oport), 1)
	caddytest.Start(t, global, site)
	g := ofrepGateway{ofrep: fmt.Sprintf("http://127.0.0.1:%d", oport)}
	var body map[string]any
	testharness.WaitFor(t, "OFREP on damaged data", func() bool {
		resp, err := http.Post(g.ofrep+"/ofrep/v1/evaluate/flags/beta", "application/json", strings.NewReader(`{"context": {"targetingKey": "u"}}`))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&body) == nil
	})
	if md, _ := body["metadata"].(map[string]any); md["version"] != 2.0 || md["percent"] != 60.0 {
		t.Errorf("OFREP on damaged data answered %v; want the last-known-good version 2, beta at 60%%", body)
	}
}
