package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/a8e2c47e/switchback/examples/backend"
)

// stopGrace is how long a server gets to exit on SIGTERM before it is
// killed.
const stopGrace = 5 * time.Second

// exampleBackend is the in-process upstream all targets end at.
type exampleBackend struct {
	addr string // host:port
	url  string
	srv  *http.Server
	done chan struct{}
}

func startBackend() (*exampleBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("backend: listen: %w", err)
	}
	b := &exampleBackend{
		addr: ln.Addr().String(),
		url:  "http://" + ln.Addr().String() + "/",
		srv:  &http.Server{Handler: backend.New("blue", "v1"), ReadHeaderTimeout: requestTimeout},
		done: make(chan struct{}),
	}
	go func() {
		defer close(b.done)
		b.srv.Serve(ln) // returns ErrServerClosed once close is called
	}()
	return b, nil
}

func (b *exampleBackend) close() {
	b.srv.Close()
	<-b.done
}

// server is a server under test running as a subprocess: the gateway
// (Caddy with the Switchback modules) or nginx.
type server struct {
	name   string // for messages: "gateway" or "nginx"
	cmd    *exec.Cmd
	dir    string            // temporary; holds its configuration and state
	urls   map[string]string // target name -> URL
	output *tailBuffer

	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // set before exited is closed
	once    sync.Once
}

// startServer starts cmd, on the server CPU of plan when there is one,
// keeping its output for error messages, and waits until every URL in urls
// answers from the backend. On error nothing is left running and dir is
// removed.
func startServer(ctx context.Context, name, dir string, cmd *exec.Cmd, urls map[string]string, plan *cpuPlan) (_ *server, err error) {
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	s := &server{
		name:   name,
		cmd:    cmd,
		dir:    dir,
		urls:   urls,
		output: &tailBuffer{max: 16 << 10},
		exited: make(chan struct{}),
	}
	cmd.Stdout = s.output
	cmd.Stderr = s.output
	cmd.SysProcAttr = sysProcAttr()
	if err := plan.startPinned(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	defer func() {
		if err != nil {
			s.stopProcess()
		}
	}()
	targets := make([]string, 0, len(urls))
	for t := range urls {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	for _, t := range targets {
		if err := s.waitReady(ctx, t, urls[t]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startGateway writes a Caddyfile with one site per gateway target, starts
// bin on it and waits until every site answers from the backend. On error
// nothing is left running and no files are left behind.
func startGateway(ctx context.Context, bin, backendAddr string, targets []string, plan *cpuPlan) (*server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("gateway binary: %w; build it with `go build -o bin/switchback ./cmd/switchback` or point -bin at it", err)
	}
	dir, err := os.MkdirTemp("", "loadbench-*")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	ports := make(map[string]int)
	urls := make(map[string]string)
	for _, t := range targets {
		if t != targetReverseProxy && t != targetSwitchback {
			continue
		}
		p, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		ports[t] = p
		urls[t] = "http://127.0.0.1:" + strconv.Itoa(p) + "/"
	}
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(caddyfile(backendAddr, ports)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("write Caddyfile: %w", err)
	}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	// Caddy keeps its data and autosaved config under these; keep them in
	// the temporary directory rather than in the user's home.
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
	return startServer(ctx, "gateway", dir, cmd, urls, plan)
}

// caddyfile returns the gateway's configuration: a site per target in
// ports, all proxying to the backend. Every site binds to loopback only.
func caddyfile(backendAddr string, ports map[string]int) string {
	var b strings.Builder
	b.WriteString("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n\tdefault_bind 127.0.0.1\n}\n")
	if p, ok := ports[targetReverseProxy]; ok {
		fmt.Fprintf(&b, "\nhttp://127.0.0.1:%d {\n\treverse_proxy %s\n}\n", p, backendAddr)
	}
	if p, ok := ports[targetSwitchback]; ok {
		fmt.Fprintf(&b, `
http://127.0.0.1:%d {
	switchback bench {
		pool blue %[2]s
		pool green %[2]s
		weights blue 50 green 50
		sticky header X-User-ID
		flag f1 10
		flag f2 50
	}
}
`, p, backendAddr)
	}
	return b.String()
}

// freePort returns a loopback port that was free a moment ago. Another
// process could take it before the server does; starting it then fails
// with the server's own error rather than measuring the wrong thing.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls url until the backend answers through it, the server
// exits, or ctx is done.
func (s *server) waitReady(ctx context.Context, target, url string) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	backoff := 10 * time.Millisecond
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get(backend.HeaderBackendPool) != "" {
				return nil
			}
			err = fmt.Errorf("status %s without the backend's headers", resp.Status)
		}
		last = err

		t := time.NewTimer(backoff)
		select {
		case <-s.exited:
			t.Stop()
			return s.exitError()
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s %s site %s not ready (last: %v): %w\n%s", s.name, target, url, last, context.Cause(ctx), s.output.indented())
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// exitError describes an early exit of the server, with its last output.
func (s *server) exitError() error {
	out := s.output.String()
	hint := ""
	if strings.Contains(out, "unrecognized directive: switchback") {
		hint = "\nthis binary has no switchback directive yet; measure the rest with -only direct,reverse_proxy"
	}
	return fmt.Errorf("%s exited early: %v%s\n%s", s.name, s.waitErr, hint, s.output.indented())
}

// cpu returns the server's CPU time so far, over all its threads.
func (s *server) cpu() (time.Duration, error) {
	select {
	case <-s.exited:
		return 0, s.exitError()
	default:
	}
	return processCPU(s.cmd.Process.Pid)
}

// stop stops the server and removes its temporary directory.
func (s *server) stop() {
	s.stopProcess()
	os.RemoveAll(s.dir)
}

// stopProcess asks the server to exit, kills it if it has not within
// stopGrace, and waits for it either way.
func (s *server) stopProcess() {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-s.exited:
		case <-t.C:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// checkRoutingHeaders reports whether a routing target (switchback, nginx)
// passes its decision to the backend, as the backend echoes it. A missing
// decision does not stop the benchmark, but the caller should say so.
func checkRoutingHeaders(ctx context.Context, target, url string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-User-ID", "loadbench-check")
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return fmt.Errorf("check %s headers: %w", target, err)
	}
	defer resp.Body.Close()
	var echo struct {
		Switchback struct {
			Pool    string `json:"pool"`
			Version string `json:"version"`
		} `json:"switchback"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		return fmt.Errorf("check %s headers: decode backend echo: %w", target, err)
	}
	if echo.Switchback.Pool == "" || echo.Switchback.Version == "" {
		return fmt.Errorf("the %s site did not send %s and %s upstream; is it routing?", target, backend.HeaderPool, backend.HeaderVersion)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it: a server's output,
// for error messages.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// indented returns the last lines of output, indented to set them apart
// from the error they explain.
func (t *tailBuffer) indented() string {
	lines := strings.Split(strings.TrimRight(t.String(), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	var b bytes.Buffer
	b.WriteString("output (last lines):")
	for _, l := range lines {
		b.WriteString("\n    ")
		b.WriteString(l)
	}
	return b.String()
}
