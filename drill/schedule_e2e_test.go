package drill_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/drill"
	"github.com/a8e2c47e/switchback/examples/backend"
	"github.com/a8e2c47e/switchback/internal/testharness"
)

// A gateway with a drill schedule drills its staging deployment on its
// own, as the elected instance, and records the result in the history.
func TestScheduledDrillRuns(t *testing.T) {
	dir := t.TempDir()
	etcd, err := configstore.StartEmbedded(filepath.Join(dir, "etcd"), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	blue := httptest.NewServer(backend.New("blue", "v1"))
	green := httptest.NewServer(backend.New("green", "v2"))
	t.Cleanup(blue.Close)
	t.Cleanup(green.Close)
	caddyAdmin, adminPort, sitePort := testharness.FreePort(t), testharness.FreePort(t), testharness.FreePort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", sitePort)
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	default_bind 127.0.0.1
	switchback {
		store etcd %s
		admin 127.0.0.1:%d
		instance drill-schedule
		state_dir %s
		drill {
			every 720h
			patterns flip
			traffic staging-shop %s
		}
	}
}

%s {
	switchback staging-shop {
		pool blue %s {
			release v1
		}
		pool green %s {
			release v2
		}
		live blue
		environment staging
	}
}
`, caddyAdmin, etcd.Endpoints()[0], adminPort, filepath.Join(dir, "state"), site, site,
		strings.TrimPrefix(blue.URL, "http://"), strings.TrimPrefix(green.URL, "http://"))
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := exec.Command(binary, "run", "--config", path, "--adapter", "caddyfile")
	gw.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	var out strings.Builder
	gw.Stdout, gw.Stderr = &out, &out
	gw.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = gw.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = gw.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = gw.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("gateway output:\n%s", out.String())
		}
	})

	c, err := admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", adminPort), "")
	if err != nil {
		t.Fatal(err)
	}
	var manual *drill.Result
	testharness.Eventually(t, 90*time.Second, func() (bool, string) {
		recs, err := c.Drills(t.Context(), "flip", 10)
		if err != nil {
			return false, err.Error()
		}
		for _, r := range recs {
			if r.Trigger == drill.Manual {
				manual = &r.Result
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d flip drills recorded, none manual", len(recs))
	})
	if !manual.Passed || manual.Deployment != "staging-shop" || manual.Target == "sandbox" {
		t.Errorf("scheduled flip drill: passed=%v deployment=%q target=%q error=%q", manual.Passed, manual.Deployment, manual.Target, manual.Error)
	}
}
