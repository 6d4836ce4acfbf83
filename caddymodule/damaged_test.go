package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// cutWAL truncates the embedded etcd's write-ahead log after its header,
// as a crash or a full disk might: etcd then never becomes ready.
func cutWAL(t *testing.T, dataDir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "member", "wal", "*.wal"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no WAL file in %s: %v", dataDir, err)
	}
	if err := os.Truncate(files[len(files)-1], 100); err != nil {
		t.Fatal(err)
	}
}

// corruptDB zeroes the bolt file's meta pages: etcd panics opening it.
func corruptDB(t *testing.T, dataDir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dataDir, "member", "snap", "db"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 2*os.Getpagesize()), 0); err != nil {
		t.Fatal(err)
	}
}

// waitForLastKnownGood waits until the state dir holds the version of a
// deployment.
func waitForLastKnownGood(t *testing.T, stateDir, name string, version uint64) {
	t.Helper()
	testharness.WaitFor(t, fmt.Sprintf("last-known-good version %d", version), func() bool {
		b, err := os.ReadFile(filepath.Join(stateDir, name+".json"))
		if err != nil {
			return false
		}
		var doc configstore.Document
		return json.Unmarshal(b, &doc) == nil && doc.Meta.Version == version
	})
}

func embeddedGlobal(dataDir, addr, stateDir, onDamaged string) string {
	g := fmt.Sprintf("switchback {\n\t\tstore embedded %s %s\n\t\tadmin off\n\t\tstate_dir %s\n", dataDir, addr, stateDir)
	if onDamaged != "" {
		g += "\t\ton_damaged_data " + onDamaged + "\n"
	}
	return g + "\t}"
}

// loadErr loads a whole config and returns Caddy's error, stopping what it
// started.
func loadErr(t *testing.T, global, site string) error {
	t.Helper()
	err := caddytest.Load(t, caddytest.Caddyfile(global, fmt.Sprintf("http://127.0.0.1:%d", testharness.FreePort(t)), site))
	_ = caddy.Stop()
	return err
}

// TestDamagedEmbeddedData: a gateway on damaged embedded data refuses to
// start with an error naming the data and what to do, unless told to serve
// its last-known-good documents, which it then does.
func TestDamagedEmbeddedData(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dataDir string)
	}{
		{"write-ahead log cut", cutWAL},
		{"database corrupt", corruptDB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ups := testharness.StartBackends(t)
			dataDir, stateDir := t.TempDir(), t.TempDir()
			addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))

			// A gateway makes green live through the store, which records
			// version 2 as last-known-good, then stops.
			base := caddytest.Start(t, embeddedGlobal(dataDir, addr, stateDir, ""), siteWithStore(ups, "blue"))
			store := etcdtest.Dial(t, "http://"+addr)
			if _, err := store.Update(t.Context(), "checkout", 1, configstore.Meta{Author: "test", Source: configstore.SourceAPI, Reason: "flip"},
				func(c *gateway.Config) error { c.Weights = map[string]float64{"blue": 0, "green": 100}; return nil }); err != nil {
				t.Fatal(err)
			}
			testharness.WaitFor(t, "green to be served", func() bool { p, _ := servedPool(t, base, "u1"); return p == "green" })
			waitForLastKnownGood(t, stateDir, "checkout", 2)
			if err := caddy.Stop(); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dataDir)

			// By default: no start, and an error saying why and what to do.
			err := loadErr(t, embeddedGlobal(dataDir, addr, stateDir, ""), siteWithStore(ups, "blue"))
			if err == nil {
				t.Fatal("start on damaged data succeeded; want an error")
			}
			// Caddy flattens provisioning errors to text (%v), so the
			// sentinel is checked in configstore; here, what the operator reads.
			for _, want := range []string{"data directory " + dataDir + " is damaged", "restore", "on_damaged_data serve_last_known_good"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}

			// Opted in: the last-known-good green at version 2, not the
			// Caddyfile's blue.
			base = caddytest.Start(t, embeddedGlobal(dataDir, addr, stateDir, "serve_last_known_good"), siteWithStore(ups, "blue"))
			if pool, v := servedPool(t, base, "u1"); pool != "green" || v != "2" {
				t.Errorf("on damaged data: %s at version %s; want the last-known-good green at version 2", pool, v)
			}
		})
	}
}

// Serving last-known-good documents needs one for every deployment: the
// Caddyfile's may be far older than what was live.
func TestDamagedDataWithoutLastKnownGood(t *testing.T) {
	ups := testharness.StartBackends(t)
	dataDir, stateDir := t.TempDir(), t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	caddytest.Start(t, embeddedGlobal(dataDir, addr, stateDir, ""), siteWithStore(ups, "blue"))
	waitForLastKnownGood(t, stateDir, "checkout", 1)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	cutWAL(t, dataDir)
	if err := os.Remove(filepath.Join(stateDir, "checkout.json")); err != nil {
		t.Fatal(err)
	}

	err := loadErr(t, embeddedGlobal(dataDir, addr, stateDir, "serve_last_known_good"), siteWithStore(ups, "blue"))
	if err == nil {
		t.Fatal("start on damaged data without a last-known-good file succeeded; want an error")
	}
	for _, want := range []string{filepath.Join(stateDir, "checkout.json"), "is damaged"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestOnDamagedDataRefusesBadValues(t *testing.T) {
	tests := []struct {
		name   string
		global string
		want   []string
	}{
		{"unknown value", "switchback {\n\t\ton_damaged_data ignore\n\t}", []string{`on_damaged_data "ignore"`, "fail or serve_last_known_good", "Caddyfile:3"}},
		{"no value", "switchback {\n\t\ton_damaged_data\n\t}", []string{"on_damaged_data needs a value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "{\n\t" + tt.global + "\n}\n:8080 {\n\trespond ok\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("adapt succeeded; want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	// An external cluster's data is not this machine's to judge.
	ups := testharness.StartBackends(t)
	err := loadErr(t, "switchback {\n\t\tstore etcd 127.0.0.1:1\n\t\tadmin off\n\t\ton_damaged_data serve_last_known_good\n\t}", siteWithStore(ups, "blue"))
	if err == nil || !strings.Contains(err.Error(), "applies to the embedded store only") {
		t.Errorf("on_damaged_data with store etcd: %v; want an error saying it applies to the embedded store only", err)
	}
}

func TestStaleLastKnownGoodTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	files := []struct {
		name string
		age  time.Duration
		kept bool
	}{
		{".lkg-crashed", time.Hour, false},
		{".lkg-in-flight", 0, true}, // another gateway's write under way
		{"checkout.json", time.Hour, true},
		{".other-stale", time.Hour, true},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, now.Add(-f.age), now.Add(-f.age)); err != nil {
			t.Fatal(err)
		}
	}
	a := &App{StateDir: dir, logger: zap.NewNop(), now: func() time.Time { return now }}
	a.removeStaleTemps()
	for _, f := range files {
		_, err := os.Stat(filepath.Join(dir, f.name))
		if got := err == nil; got != f.kept {
			t.Errorf("%s (age %s): kept %v; want %v", f.name, f.age, got, f.kept)
		}
	}
}

// TestBinaryOnDamagedOrBusyData runs the real binary: it exits non-zero
// with a clear message (no hang, no panic) on damaged data or a data
// directory in use, and serves its last-known-good document when told to.
func TestBinaryOnDamagedOrBusyData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "switchback")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/a8e2c47e/switchback/cmd/switchback")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ups := testharness.StartBackends(t)

	// newGateway writes a Caddyfile for a gateway on dataDir, serving blue
	// or green as the Caddyfile's live pool.
	type gw struct{ dir, dataDir, stateDir, base string }
	newGateway := func(dataDir, stateDir string) gw {
		g := gw{dir: t.TempDir(), dataDir: dataDir, stateDir: stateDir}
		g.base = fmt.Sprintf("http://127.0.0.1:%d", testharness.FreePort(t))
		return g
	}
	writeCaddyfile := func(g gw, live, onDamaged string) {
		global := embeddedGlobal(g.dataDir, fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t)), g.stateDir, onDamaged)
		src := caddytest.Caddyfile(global, g.base, siteWithStore(ups, live))
		if err := os.WriteFile(filepath.Join(g.dir, "Caddyfile"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("damaged data, in use, and last-known-good", func(t *testing.T) {
		dataDir, stateDir := t.TempDir(), t.TempDir()
		first := newGateway(dataDir, stateDir)
		writeCaddyfile(first, "blue", "")
		p := startBinary(t, bin, first.dir)
		testharness.WaitFor(t, "the gateway to serve blue", func() bool { return answers(first.base) == "blue" })
		waitForLastKnownGood(t, stateDir, "checkout", 1)

		// A second gateway on the same data: refused at once, naming the
		// first one's pid.
		second := newGateway(dataDir, t.TempDir())
		writeCaddyfile(second, "blue", "")
		code, stderr := runBinary(t, bin, second.dir)
		want := fmt.Sprintf("data directory %s is in use by another process (pid %d)", dataDir, p.cmd.Process.Pid)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("second gateway on the same data: exit %d, stderr:\n%s\nwant non-zero and %q", code, stderr, want)
		}

		p.stop(t)
		cutWAL(t, dataDir)

		// Damaged data: refused, with the directory and what to do.
		writeCaddyfile(first, "green", "")
		code, stderr = runBinary(t, bin, first.dir)
		for _, want := range []string{"data directory " + dataDir + " is damaged", "on_damaged_data serve_last_known_good"} {
			if code == 0 || !strings.Contains(stderr, want) {
				t.Errorf("damaged data: exit %d, stderr:\n%s\nwant non-zero and %q", code, stderr, want)
			}
		}

		// Opted in: serves the last-known-good blue, though the Caddyfile
		// now says green.
		writeCaddyfile(first, "green", "serve_last_known_good")
		p = startBinary(t, bin, first.dir)
		testharness.WaitFor(t, "the gateway to answer", func() bool { return answers(first.base) != "" })
		if got := answers(first.base); got != "blue" {
			t.Errorf("damaged data, serve_last_known_good: served %q; want the last-known-good blue", got)
		}
		p.stop(t)
	})

	t.Run("corrupt database", func(t *testing.T) {
		dataDir := t.TempDir()
		g := newGateway(dataDir, t.TempDir())
		writeCaddyfile(g, "blue", "")
		p := startBinary(t, bin, g.dir)
		testharness.WaitFor(t, "the gateway to serve blue", func() bool { return answers(g.base) == "blue" })
		p.stop(t)
		corruptDB(t, dataDir)

		code, stderr := runBinary(t, bin, g.dir)
		want := fmt.Sprintf("is damaged: %s: invalid database", filepath.Join(dataDir, "member", "snap", "db"))
		if code == 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "panic:") {
			t.Errorf("corrupt database: exit %d, stderr:\n%s\nwant non-zero, %q and no panic", code, stderr, want)
		}
	})
}

// binaryExitBound is how long a refused start may take before it counts as
// a hang: far above the second it takes, far below etcd's 30 s ready wait.
const binaryExitBound = 20 * time.Second

// runBinary runs `switchback run` in dir until it exits, and returns its
// exit code and stderr.
func runBinary(t *testing.T, bin, dir string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), binaryExitBound)
	defer cancel()
	cmd := binaryCommand(ctx, t, bin, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("switchback run did not exit within %s; stderr:\n%s", binaryExitBound, stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

func binaryCommand(ctx context.Context, t *testing.T, bin, dir string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, "run", "--config", "Caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	return cmd
}

type gatewayProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex // protects stderr, written by exec's copier
	stderr bytes.Buffer
	done   chan error
	once   sync.Once
}

func (p *gatewayProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

// startBinary starts `switchback run` in dir; it is stopped with SIGTERM
// at the latest when the test ends.
func startBinary(t *testing.T, bin, dir string) *gatewayProcess {
	t.Helper()
	p := &gatewayProcess{cmd: binaryCommand(context.Background(), t, bin, dir), done: make(chan error, 1)}
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits for the exit; a gateway that ignores it is
// killed and fails the test.
func (p *gatewayProcess) stop(t *testing.T) {
	t.Helper()
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(binaryExitBound):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Errorf("gateway ignored SIGTERM for %s; stderr:\n%s", binaryExitBound, p.stderr.String())
		}
	})
}

// answers returns the pool that served a request, or "" when none did.
func answers(base string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e, err := testharness.Ask(ctx, base, "u1")
	if err != nil {
		return ""
	}
	return e.Pool
}
