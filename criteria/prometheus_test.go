package criteria

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

// TestRealPrometheus runs a real Prometheus (the prometheus binary, when
// installed) scraping a test exporter, and judges a criterion by its
// query API.
func TestRealPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus)")
	}
	var ready atomic.Int64
	ready.Store(120)
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE rabbitmq_queue_messages_ready gauge\nrabbitmq_queue_messages_ready{queue=\"a\"} %d\nrabbitmq_queue_messages_ready{queue=\"b\"} 10\n", ready.Load())
	}))
	t.Cleanup(exporter.Close)

	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: queue\n    static_configs:\n      - targets: ['%s']\n",
		strings.TrimPrefix(exporter.URL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	const q = "sum(rabbitmq_queue_messages_ready)"
	c := gateway.Criterion{Name: "queue", Kind: gateway.CriterionPrometheus, URL: "http://" + addr, Query: q, Above: 5000}
	p := &Prober{Client: &http.Client{Timeout: time.Second}}
	waitSample := func(what string, cond func(v float64, breach bool) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := p.Probe(t.Context(), c, time.Now())
			if s.Err == "" && cond(s.Value, s.Breach) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; last sample %+v", what, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitSample("the scraped sum, under the threshold", func(v float64, breach bool) bool { return v == 130 && !breach })
	ready.Store(5200)
	waitSample("the queue over 5000", func(v float64, breach bool) bool { return v == 5210 && breach })
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
