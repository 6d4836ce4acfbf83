package admin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/cmdline"
)

func TestConfigCLI(t *testing.T) {
	h := newHarness(t, nil)
	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL, "EDITOR": "sed -i s/50/60/"}
	dir := t.TempDir()
	file := filepath.Join(dir, "payments.json")
	if err := os.WriteFile(file, []byte(`{"db": {"pool": {"max": 20}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"config", "put", "payments", file, "--reason", "first"}, cmdline.ExitOK, "payments version 1"},
		{[]string{"config", "patch", "payments", `{"db": {"pool": {"max": 50}}}`}, cmdline.ExitOK, "payments version 2"},
		{[]string{"config", "get", "payments"}, cmdline.ExitOK, `"max": 50`},
		{[]string{"config", "diff", "payments"}, cmdline.ExitOK, "db.pool.max"},
		{[]string{"config", "edit", "payments"}, cmdline.ExitOK, "payments version 3"},
		{[]string{"config", "history", "payments", "--limit", "3"}, cmdline.ExitOK, "first"},
		{[]string{"config", "rollback", "payments"}, cmdline.ExitOK, "payments version 4"},
		{[]string{"config", "restore", "payments", "1"}, cmdline.ExitOK, "payments version 5"},
		{[]string{"config", "patch", "payments", `{"db": 1}`, "--if-match", "2"}, cmdline.ExitError, ""},
		{[]string{"config", "get", "nosuch"}, cmdline.ExitError, ""},
		{[]string{"config", "frobnicate", "payments"}, cmdline.ExitUsage, ""},
		{[]string{"config", "get", "payments", "--json"}, cmdline.ExitOK, `"version": 5`},
	}
	for _, st := range steps {
		code, out, _ := runCLI(t, env, st.args...)
		if code != st.code || !strings.Contains(out, st.out) {
			t.Fatalf("switchback %s = exit %d, output %q; want exit %d containing %q", strings.Join(st.args, " "), code, out, st.code, st.out)
		}
	}
	if s, _ := h.store.ServiceVersion(t.Context(), "payments", 3); !strings.Contains(string(s.Config), `"max":60`) {
		t.Fatalf("edited version 3 = %s, want max 60", s.Config)
	}
}

func TestChangeSetCLI(t *testing.T) {
	h := newHarness(t, nil)
	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
	for _, n := range []string{"payments", "search"} {
		h.putService(n, `{"timeout_ms": 1000}`)
	}
	file := filepath.Join(t.TempDir(), "cs.json")
	if err := os.WriteFile(file, []byte(`{"reason": "timeouts", "changes": [
		{"service": "payments", "patch": {"timeout_ms": 2000}}, {"service": "search", "patch": {"timeout_ms": 2000}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, env, "changeset", "apply", file)
	if code != cmdline.ExitOK || !strings.Contains(out, "service payments: version 1 → 2") {
		t.Fatalf("apply = %d %q", code, out)
	}
	list, err := h.store.ListChangeSets(t.Context(), 1)
	if err != nil || len(list) != 1 {
		t.Fatalf("change sets = %v, %v", list, err)
	}
	id := list[0].ID
	if code, out, _ := runCLI(t, env, "changeset", "list"); code != cmdline.ExitOK || !strings.Contains(out, id) {
		t.Fatalf("list = %d %q", code, out)
	}
	if code, out, _ := runCLI(t, env, "changeset", "show", id); code != cmdline.ExitOK || !strings.Contains(out, "timeouts") {
		t.Fatalf("show = %d %q", code, out)
	}
	if code, out, _ := runCLI(t, env, "changeset", "revert", id, "--reason", "undo"); code != cmdline.ExitOK || !strings.Contains(out, "reverts "+id) {
		t.Fatalf("revert = %d %q", code, out)
	}
	if v := h.serviceVersion("search"); v != 3 {
		t.Fatalf("search at %d after revert, want 3", v)
	}
}

// syncBuffer is a bytes.Buffer safe to read while the watch writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestConfigWatchCLI(t *testing.T) {
	h := newHarness(t, nil)
	h.putService("payments", `{"max": 20}`)
	dir := t.TempDir()
	target := filepath.Join(dir, "payments.conf")
	marker := filepath.Join(dir, "reloaded")
	tmpl := filepath.Join(dir, "payments.tmpl")
	if err := os.WriteFile(tmpl, []byte("max_connections = {{.max}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- RunCLI(ctx, []string{"config", "watch", "payments", "--write", target, "--template", tmpl,
			"--exec", "echo reloaded >> " + marker, "--admin", h.srv.URL}, &out, &errb, func(string) string { return "" })
	}()
	defer func() {
		cancel()
		if code := <-done; code != cmdline.ExitOK {
			t.Errorf("watch exit %d", code)
		}
	}()
	waitFile(t, target, "max_connections = 20\n")
	h.do("PATCH", "/api/v1/services/payments", `{"patch": {"max": 50}}`)
	waitFile(t, target, "max_connections = 50\n")
	waitFile(t, marker, "reloaded\nreloaded\n")
}

// waitFile polls until path holds want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got, _ = os.ReadFile(path); string(got) == want {
			return
		}
	}
	t.Fatalf("%s = %q, want %q", path, got, want)
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in      string
		pid     int
		sig     syscall.Signal
		wantErr bool
	}{
		{"1234:SIGHUP", 1234, syscall.SIGHUP, false},
		{"7:hup", 7, syscall.SIGHUP, false},
		{"7:USR1", 7, syscall.SIGUSR1, false},
		{"7", 0, 0, true},
		{"0:HUP", 0, 0, true},
		{"7:SIGKILL", 0, 0, true},
	}
	for _, tt := range tests {
		pid, sig, err := parseSignal(tt.in)
		if (err != nil) != tt.wantErr || pid != tt.pid || sig != tt.sig {
			t.Errorf("parseSignal(%q) = %d, %v, %v; want %d, %v, error %v", tt.in, pid, sig, err, tt.pid, tt.sig, tt.wantErr)
		}
	}
}
