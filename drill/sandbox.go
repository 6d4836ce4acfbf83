package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/examples/backend"
)

// Sandbox deployments: the guard trigger drills one with a guard; the
// manual trigger one without, so the command is what restores it and not
// a guard that beats any engineer to it.
const (
	SandboxGuarded   = "checkout"
	SandboxUnguarded = "checkout-manual"
)

// SandboxDatabase is the name of the sandbox gateway's database (its
// `database NAME DSN { migrations DIR }` line), the release pattern's.
const SandboxDatabase = "drill"

// Sandbox is a whole Switchback on 127.0.0.1 in a temporary directory:
// embedded etcd, the example blue and green backends, a real switchback
// gateway process (`switchback run` of a generated Caddyfile) with its
// admin API, a SQLite database for the migration pattern and another one
// the gateway knows by name (SandboxDatabase) for the release pattern.
// Close tears it all down.
type Sandbox struct {
	Dir      string
	AdminURL string
	// Traffic maps each sandbox deployment to its site's URL.
	Traffic  map[string]string
	Database string
	Binary   string
	// Caddyfile is the gateway's configuration, which `switchback migrate
	// --database SandboxDatabase --config Caddyfile` reads;
	// ReleaseDatabase is that database's address.
	Caddyfile       string
	ReleaseDatabase string

	etcd     *configstore.Embedded
	backends map[string]*httptest.Server
	gw       *exec.Cmd
	gwDone   chan struct{}
	gwOut    *tailBuffer
	closeOne sync.Once
}

// sandboxGuard judges fast enough for a drill measured in milliseconds:
// the shortest window the guard accepts, few samples, a short cooldown
// so drills can follow each other.
const sandboxGuard = `guard {
			error_rate 5%
			window 1s
			min_requests 10
			baseline 2x
			cooldown 200ms
		}`

// SandboxOptions vary a sandbox.
type SandboxOptions struct {
	// ReleaseMigrations replaces the release pattern's migrations, which
	// the sandbox writes to its database's migrations directory (tests
	// break a down on purpose with it). They must be versions 1 (creates
	// a table) and 2 (an expand).
	ReleaseMigrations fs.FS
}

// StartSandbox starts a sandbox with the switchback binary at binary.
func StartSandbox(ctx context.Context, binary string) (*Sandbox, error) {
	return StartSandboxWith(ctx, binary, SandboxOptions{})
}

// StartSandboxWith starts a sandbox varied by o.
func StartSandboxWith(ctx context.Context, binary string, o SandboxOptions) (_ *Sandbox, err error) {
	dir, err := os.MkdirTemp("", "switchback-drill-")
	if err != nil {
		return nil, err
	}
	s := &Sandbox{Dir: dir, Binary: binary, backends: map[string]*httptest.Server{}, Traffic: map[string]string{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.etcd, err = configstore.StartEmbedded(filepath.Join(dir, "etcd"), "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("sandbox etcd: %w", err)
	}
	for _, pool := range []string{"blue", "green"} {
		release := map[string]string{"blue": "v1", "green": "v2"}[pool]
		s.backends[pool] = httptest.NewServer(backend.New(pool, release))
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	s.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	s.Traffic[SandboxGuarded] = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	s.Traffic[SandboxUnguarded] = fmt.Sprintf("http://127.0.0.1:%d", ports[3])
	s.Database = "sqlite:" + filepath.Join(dir, "drill.db")
	migrations, err := s.releaseDatabase(o.ReleaseMigrations)
	if err != nil {
		return nil, err
	}
	// The guarded deployment starts split, so a flag's failures hit both
	// pools alike and the guard's baseline blames the flag, not a pool.
	site := func(port int, name, weights, guard string) string {
		return fmt.Sprintf(`http://127.0.0.1:%d {
	switchback %s {
		pool blue %s {
			release v1
		}
		pool green %s {
			release v2
		}
		environment staging
		%s
		%s
	}
}
`, port, name, hostport(s.backends["blue"]), hostport(s.backends["green"]), weights, guard)
	}
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	default_bind 127.0.0.1
	switchback {
		store etcd %s
		admin 127.0.0.1:%d
		instance drill-sandbox
		state_dir %s
		database %s %s {
			migrations %s
		}
	}
}

`, ports[0], s.etcd.Endpoints()[0], ports[1], filepath.Join(dir, "state"), SandboxDatabase, s.ReleaseDatabase, migrations) +
		site(ports[2], SandboxGuarded, "weights blue 50 green 50", sandboxGuard) + site(ports[3], SandboxUnguarded, "live blue", "")
	s.Caddyfile = filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(s.Caddyfile, []byte(cf), 0o600); err != nil {
		return nil, err
	}
	s.gw = exec.Command(binary, "run", "--config", s.Caddyfile, "--adapter", "caddyfile")
	s.gw.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	s.gwOut = &tailBuffer{}
	s.gw.Stdout, s.gw.Stderr = s.gwOut, s.gwOut
	// Its own process group, so an interrupted drill's Ctrl-C reaches the
	// drill, which stops the gateway itself.
	s.gw.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.gw.Start(); err != nil {
		return nil, fmt.Errorf("sandbox gateway: %w", err)
	}
	s.gwDone = make(chan struct{})
	go func() { _ = s.gw.Wait(); close(s.gwDone) }()
	return s, s.waitReady(ctx)
}

// releaseDatabase creates the release pattern's SQLite database, empty
// (the gateway reads its version from the start and must find the file),
// and writes its migrations (migrations, or the drill's own) to a
// directory of the sandbox, which it returns.
func (s *Sandbox) releaseDatabase(migrations fs.FS) (string, error) {
	path := filepath.Join(s.Dir, "release.db")
	s.ReleaseDatabase = "sqlite:" + path
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return "", fmt.Errorf("sandbox release database: %w", err)
	}
	if migrations == nil {
		migrations = releaseMigrations()
	}
	dir := filepath.Join(s.Dir, "release-migrations")
	if err := os.CopyFS(dir, migrations); err != nil {
		return "", fmt.Errorf("sandbox release migrations: %w", err)
	}
	return dir, nil
}

// waitReady waits until both deployments answer through the gateway
// and the admin API knows them.
func (s *Sandbox) waitReady(ctx context.Context) error {
	c, err := admin.NewClient(s.AdminURL, "")
	if err != nil {
		return err
	}
	c.HTTP = &http.Client{Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		select {
		case <-s.gwDone:
			return fmt.Errorf("sandbox gateway exited:\n%s", s.gwOut.String())
		default:
		}
		ready := true
		for name, u := range s.Traffic {
			if _, err := c.Status(ctx, name); err != nil {
				ready = false
				break
			}
			resp, err := http.Get(u + "/")
			if err != nil {
				ready = false
				break
			}
			resp.Body.Close()
			ready = ready && resp.StatusCode == http.StatusOK
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sandbox gateway not serving after 60s:\n%s", s.gwOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Env returns the environment for drilling with trigger t.
func (s *Sandbox) Env(t Trigger) (*Env, error) {
	name := SandboxUnguarded
	if t == Guard {
		name = SandboxGuarded
	}
	c, err := admin.NewClient(s.AdminURL, "")
	if err != nil {
		return nil, err
	}
	c.HTTP = &http.Client{Timeout: 10 * time.Second}
	faults := map[string][]string{}
	for pool, b := range s.backends {
		faults[pool] = []string{b.URL + "/_fault"}
	}
	return &Env{
		Target: "sandbox", Admin: c, AdminURL: s.AdminURL, Deployment: name, Traffic: s.Traffic[name],
		Database: s.Database, Faults: faults, HTTP: &http.Client{Timeout: 5 * time.Second},
		ReleaseDatabase: SandboxDatabase, ReleaseDatabaseURL: s.ReleaseDatabase, Caddyfile: s.Caddyfile,
		CLI: Exec{Path: s.Binary, AdminURL: s.AdminURL},
	}, nil
}

// Close stops the gateway, the backends and etcd and removes the
// directory.
func (s *Sandbox) Close() error {
	var errs []error
	s.closeOne.Do(func() {
		if s.gw != nil && s.gw.Process != nil {
			_ = s.gw.Process.Signal(syscall.SIGINT)
			select {
			case <-s.gwDone:
			case <-time.After(10 * time.Second):
				_ = s.gw.Process.Kill()
				<-s.gwDone
			}
		}
		for _, b := range s.backends {
			b.Close()
		}
		if s.etcd != nil {
			errs = append(errs, s.etcd.Close())
		}
		errs = append(errs, os.RemoveAll(s.Dir))
	})
	return errors.Join(errs...)
}

func hostport(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// tailBuffer keeps the last 32 KiB a process wrote: enough to say why the
// gateway failed.
type tailBuffer struct {
	mu sync.Mutex // guards b
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 64<<10 {
		t.b = bytes.Clone(t.b[len(t.b)-32<<10:])
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
