package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = RunCLI(t.Context(), args, &out, &errb, func(k string) string { return env[k] })
	t.Logf("$ switchback %s  => exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// TestCLI drives one deployment through the command line against a real
// server, step by step; each step starts from where the one before ended.
func TestCLI(t *testing.T) {
	h := newHarness(t, nil)
	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
	steps := []struct {
		args    []string
		code    int
		stdout  []string // substrings of stdout
		stderr  []string // substrings of stderr
		version uint64   // the stored version afterwards
	}{
		{args: []string{"status", "shop"}, stdout: []string{"shop  version 1  store ok", "POOL", "blue   100%    v1.0.0   127.0.0.1:9001",
			"green  0%      v1.1.0   127.0.0.1:9002", "new-cart  10%", "guard: no guard configured", "last change: v1", "by test (bootstrap)", "instances: host-a v1"}, version: 1},
		{args: []string{"status"}, stdout: []string{"NAME", "shop", "blue=100% green=0%"}, version: 1},
		{args: []string{"weights", "shop", "blue=70", "green=30%", "--reason", "canary 30%"},
			stdout: []string{"version 2", "blue   70%", "green  30%", `by local (cli)`, `(reason: "canary 30%")`}, version: 2},
		// From a split, flip refuses and names both ways out.
		{args: []string{"flip", "--reason=all in", "shop"}, code: 1, stderr: []string{"weights: blue=70 green=30: flip needs all traffic on one pool",
			"switchback weights shop blue=100 green=0, or switchback weights shop blue=0 green=100", "(field: weights)"}, version: 2},
		{args: []string{"weights", "--reason=all in", "shop", "blue=0", "green=100"}, stdout: []string{"version 3", "green  100%", "instances: host-a v1 (behind)"}, version: 3},
		{args: []string{"flag", "shop", "new-cart", "25.5", "--if-match", "3"}, stdout: []string{"version 4", "new-cart  25.5%"}, version: 4},
		{args: []string{"flag", "shop", "new-cart", "--delete"}, stdout: []string{"version 5"}, version: 5},
		{args: []string{"history", "shop", "--limit", "3"}, stdout: []string{"VERSION  TIME", "5        2", "local   cli", "flags.new-cart removed",
			"3        ", "all in"}, version: 5},
		{args: []string{"diff", "shop"}, stdout: []string{"shop: v4 → v5", `flags.new-cart  {"percent":25.5} → -`}, version: 5},
		{args: []string{"diff", "shop", "--from", "2", "--to", "3"}, stdout: []string{"shop: v2 → v3", "weights.blue   70 → 0", "weights.green  30 → 100"}, version: 5},
		{args: []string{"restore", "shop", "1", "--reason", "bad release"}, stdout: []string{"version 6", "blue   100%", "restored version 1"}, version: 6},
		{args: []string{"rollback", "shop"}, stdout: []string{"version 7", "green  100%", "restored version 5"}, version: 7},

		// Refusals: the API's message and field, exit 1, nothing written.
		{args: []string{"weights", "shop", "blue=50", "green=20"}, code: 1,
			stderr: []string{"weights must sum to 100 (they sum to 70)", "(field: weights)", "[HTTP 400]"}, version: 7},
		{args: []string{"weights", "shop", "blue=50", "purple=50"}, code: 1, stderr: []string{"unknown pool", "(field: weights.purple)"}, version: 7},
		{args: []string{"flag", "shop", "x", "101"}, code: 1, stderr: []string{"(field: flags.x.percent)"}, version: 7},
		{args: []string{"status", "nope"}, code: 1, stderr: []string{`deployment "nope" not found`, "[HTTP 404]"}, version: 7},
		{args: []string{"flip", "shop", "--if-match", "3"}, code: 1, stderr: []string{"is at version 7, not 3", "[HTTP 409]"}, version: 7},
		{args: []string{"restore", "shop", "99"}, code: 1, stderr: []string{"version 99", "(field: version)"}, version: 7},
		{args: []string{"flip", "shop", "--reason", strings.Repeat("r", 501)}, code: 1, stderr: []string{"(field: reason)"}, version: 7},

		// Bad command lines: exit 2 and usage.
		{args: []string{"weights", "shop", "blue"}, code: 2, stderr: []string{`"blue": want POOL=PERCENT`, "usage: switchback weights"}, version: 7},
		{args: []string{"weights", "shop"}, code: 2, stderr: []string{"usage: switchback weights NAME POOL=PCT..."}, version: 7},
		{args: []string{"restore", "shop", "latest"}, code: 2, stderr: []string{`version "latest"`}, version: 7},
		{args: []string{"flip"}, code: 2, stderr: []string{"want one deployment name"}, version: 7},
		{args: []string{"status", "shop", "--reason", "x"}, code: 2, stderr: []string{"flag provided but not defined: -reason"}, version: 7},
		{args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`, "commands:"}, version: 7},
		{args: nil, code: 2, stderr: []string{"usage: switchback COMMAND"}, version: 7},
		{args: []string{"help"}, code: 0, stderr: []string{"rollback NAME"}, version: 7},
		{args: []string{"flip", "-h"}, code: 0, stderr: []string{"usage: switchback flip NAME", "-if-match"}, version: 7},
		{args: []string{"status", "--admin", "ftp://x"}, code: 2, stderr: []string{`admin URL "ftp://x"`}, version: 7},
	}
	for _, st := range steps {
		code, stdout, stderr := runCLI(t, env, st.args...)
		if code != st.code {
			t.Errorf("%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", st.args, code, st.code, stdout, stderr)
		}
		for _, want := range st.stdout {
			if !strings.Contains(stdout, want) {
				t.Errorf("%v: stdout lacks %q:\n%s", st.args, want, stdout)
			}
		}
		for _, want := range st.stderr {
			if !strings.Contains(stderr, want) {
				t.Errorf("%v: stderr lacks %q:\n%s", st.args, want, stderr)
			}
		}
		if got := h.current("shop").Meta.Version; got != st.version {
			t.Fatalf("%v: stored version %d, want %d", st.args, got, st.version)
		}
	}
	if doc := h.current("shop"); doc.Meta.Source != "cli" || doc.Meta.Author != "local" {
		t.Errorf("CLI version meta %+v, want author local, source cli", doc.Meta)
	}
}

func TestCLIJSON(t *testing.T) {
	h := newHarness(t, nil)
	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
	tests := []struct {
		args []string
		key  string // a top-level key the API's JSON has
	}{
		{[]string{"status", "shop", "--json"}, "instances"},
		{[]string{"status", "--json"}, "deployments"},
		{[]string{"weights", "shop", "blue=0", "green=100", "--json"}, "weights"},
		{[]string{"history", "shop", "--json"}, "history"},
		{[]string{"diff", "shop", "--json"}, "changes"},
	}
	for _, tt := range tests {
		code, stdout, _ := runCLI(t, env, tt.args...)
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(stdout), &m); code != 0 || err != nil {
			t.Errorf("%v: exit %d, %v:\n%s", tt.args, code, err, stdout)
			continue
		}
		if _, ok := m[tt.key]; !ok {
			t.Errorf("%v: no %q in %s", tt.args, tt.key, stdout)
		}
	}
}

func TestCLITokens(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Tokens = tokensFile(t) })
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string
	}{
		{"no token", map[string]string{}, []string{"status", "shop"}, 1, "missing token"},
		{"viewer from env", map[string]string{"SWITCHBACK_TOKEN": viewerToken}, []string{"status", "shop"}, 0, ""},
		{"viewer may not flip", map[string]string{"SWITCHBACK_TOKEN": viewerToken}, []string{"flip", "shop"}, 1, "needs role operator"},
		{"operator flag", map[string]string{}, []string{"flip", "shop", "--token", operatorToken}, 0, ""},
		{"unreachable", map[string]string{}, []string{"status", "--admin", "http://127.0.0.1:1"}, 1, "admin API at http://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{}, tt.args...)
			if !strings.Contains(strings.Join(args, " "), "--admin") {
				args = append(args, "--admin", h.srv.URL)
			}
			code, _, stderr := runCLI(t, tt.env, args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d stderr %q, want %d and %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
	if doc := h.current("shop"); doc.Meta.Author != "ops" || doc.Meta.Version != 2 {
		t.Errorf("version %d by %q, want 2 by ops", doc.Meta.Version, doc.Meta.Author)
	}
}

func TestClient(t *testing.T) {
	h := newHarness(t, nil)
	c, err := NewClient(h.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	d, err := c.SetPool(ctx, "shop", "green", gatewayPool("127.0.0.1:9004", "v1.2.4"), WriteOptions{Reason: "deploy", IfMatch: 1})
	if err != nil || d.Version != 2 || d.Pools["green"].Release != "v1.2.4" {
		t.Fatalf("SetPool = %+v, %v", d, err)
	}
	if d, err = c.SetWeights(ctx, "shop", map[string]float64{"blue": 90, "green": 10}, WriteOptions{}); err != nil || d.Weights["green"] != 10 {
		t.Fatalf("SetWeights = %+v, %v", d, err)
	}
	if v, err := c.Version(ctx, "shop", 1); err != nil || v.Pools["green"].Release != "v1.1.0" {
		t.Errorf("Version(1) = %+v, %v", v, err)
	}
	if hist, err := c.History(ctx, "shop", 0); err != nil || len(hist) != 3 || hist[0].Author != "local" {
		t.Errorf("History = %+v, %v", hist, err)
	}
	if health, err := c.Health(ctx); err != nil || health.Store != "ok" {
		t.Errorf("Health = %+v, %v", health, err)
	}

	tests := []struct {
		name   string
		call   func() error
		status int
		field  string
	}{
		{"stale if-match", func() error { _, err := c.Flip(ctx, "shop", WriteOptions{IfMatch: 1}); return err }, http.StatusConflict, "If-Match"},
		{"unknown pool", func() error {
			_, err := c.SetPool(ctx, "shop", "purple", gatewayPool("127.0.0.1:1", ""), WriteOptions{})
			return err
		}, http.StatusNotFound, "pool"},
		{"flag out of range", func() error { _, err := c.SetFlag(ctx, "shop", "f", 200, WriteOptions{}); return err }, http.StatusBadRequest, "flags.f.percent"},
		{"unknown deployment", func() error { _, err := c.Status(ctx, "nope"); return err }, http.StatusNotFound, "name"},
		{"unknown version", func() error { _, err := c.Diff(ctx, "shop", 40, 0); return err }, http.StatusNotFound, "from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ae *APIError
			if err := tt.call(); !errors.As(err, &ae) || ae.Status != tt.status || ae.Field != tt.field || ae.Message == "" {
				t.Errorf("error %v, want *APIError %d field %q", err, tt.status, tt.field)
			}
		})
	}
	if _, err := NewClient("127.0.0.1:9180", ""); err == nil {
		t.Error("NewClient accepted an address without a scheme")
	}
}

func gatewayPool(upstream, release string) gateway.Pool {
	return gateway.Pool{Upstreams: []string{upstream}, Release: release}
}

// TestCLIEscapesStoredText: text stored by others (reasons, releases) is
// printed with terminal controls escaped in every human output, and
// exactly with --json.
func TestCLIEscapesStoredText(t *testing.T) {
	h := newHarness(t, nil)
	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
	const reason = "\x1b[2J\x1b[31mall fine\x1b[0m\u009b1A\u202eevil\rforged"
	body, _ := json.Marshal(map[string]any{"upstreams": []string{"127.0.0.1:9002"}, "release": "\x1b]0;title\x07v2", "reason": reason})
	if r := h.do("PUT", "/api/v1/deployments/shop/pools/green", string(body)); r.status != http.StatusOK {
		t.Fatalf("pool: %d %s", r.status, r.body)
	}
	guarded(t, h)
	if code, _, _ := runCLI(t, env, "rollout", "start", "shop", "--target", "pool:green", "--steps", "10", "--bake", "1m", "--reason", reason); code != 0 {
		t.Fatalf("rollout start: exit %d", code)
	}
	if code, _, _ := runCLI(t, env, "rollout", "pause", "shop", "--reason", reason); code != 0 {
		t.Fatalf("rollout pause: exit %d", code)
	}
	for _, args := range [][]string{{"status", "shop"}, {"status"}, {"history", "shop"}, {"diff", "shop"}, {"rollout", "status", "shop"}} {
		code, stdout, _ := runCLI(t, env, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		if i := strings.IndexFunc(stdout, func(r rune) bool {
			return r == 0x1b || r == '\r' || r == 0x07 || r == 0x9b || r == 0x202e
		}); i >= 0 {
			t.Errorf("%v: raw control %q in output:\n%q", args, stdout[i:min(i+8, len(stdout))], stdout)
		}
	}
	_, stdout, _ := runCLI(t, env, "history", "shop")
	if want := `\x1b[2J\x1b[31mall fine\x1b[0m\u009b1A\u202eevil forged`; !strings.Contains(stdout, want) {
		t.Errorf("history lacks the escaped reason %q:\n%s", want, stdout)
	}
	_, stdout, _ = runCLI(t, env, "status", "shop")
	if want := `\x1b]0;title\av2`; !strings.Contains(stdout, want) {
		t.Errorf("status lacks the escaped release %q:\n%s", want, stdout)
	}
	_, stdout, _ = runCLI(t, env, "history", "shop", "--json")
	var hist History
	exact := func(m configstore.Meta) bool { return m.Reason == reason }
	if err := json.Unmarshal([]byte(stdout), &hist); err != nil || !slices.ContainsFunc(hist.History, exact) {
		t.Errorf("--json history: %v, no version with the reason exactly %q:\n%s", err, reason, stdout)
	}
}
