package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/a8e2c47e/switchback/examples/backend"
)

// stopGrace is how long the gateway gets to exit on SIGTERM before it is
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

// gateway is the gateway subprocess.
type gateway struct {
	cmd    *exec.Cmd
	dir    string            // temporary; holds the Caddyfile and Caddy's data
	urls   map[string]string // target name -> URL
	output *tailBuffer

	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // set before exited is closed
	once    sync.Once
}

// startGateway writes a Caddyfile with one site per gateway target, starts
// bin on it and waits until every site answers from the backend. On error
// nothing is left running and no files are left behind.
func startGateway(ctx context.Context, bin, backendAddr string, targets []string) (_ *gateway, err error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("gateway binary: %w; build it with `go build -o bin/switchback ./cmd/switchback` or point -bin at it", err)
	}
	dir, err := os.MkdirTemp("", "loadbench-*")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()

	ports := make(map[string]int)
	for _, t := range targets {
		if t == targetDirect {
			continue
		}
		if ports[t], err = freePort(); err != nil {
			return nil, err
		}
	}
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(caddyfile(backendAddr, ports)), 0o600); err != nil {
		return nil, fmt.Errorf("write Caddyfile: %w", err)
	}

	g := &gateway{
		dir:    dir,
		urls:   make(map[string]string),
		output: &tailBuffer{max: 16 << 10},
		exited: make(chan struct{}),
	}
	for t, p := range ports {
		g.urls[t] = "http://127.0.0.1:" + strconv.Itoa(p) + "/"
	}
	g.cmd = exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	// Caddy keeps its data and autosaved config under these; keep them in
	// the temporary directory rather than in the user's home.
	g.cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
	g.cmd.Stdout = g.output
	g.cmd.Stderr = g.output
	g.cmd.SysProcAttr = sysProcAttr()
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.exited)
	}()
	defer func() {
		if err != nil {
			g.stopProcess()
		}
	}()

	for _, t := range targets {
		if u, ok := g.urls[t]; ok {
			if err := g.waitReady(ctx, t, u); err != nil {
				return nil, err
			}
		}
	}
	return g, nil
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
// process could take it before the gateway does; startGateway then fails
// with the gateway's own error rather than measuring the wrong thing.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls url until the backend answers through it, the gateway
// exits, or ctx is done.
func (g *gateway) waitReady(ctx context.Context, target, url string) error {
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
		case <-g.exited:
			t.Stop()
			return g.exitError()
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gateway %s site %s not ready (last: %v): %w\n%s", target, url, last, context.Cause(ctx), g.output.indented())
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// exitError describes an early exit of the gateway, with its last output.
func (g *gateway) exitError() error {
	out := g.output.String()
	hint := ""
	if strings.Contains(out, "unrecognized directive: switchback") {
		hint = "\nthis binary has no switchback directive yet; measure the rest with -only direct,reverse_proxy"
	}
	return fmt.Errorf("gateway exited early: %v%s\n%s", g.waitErr, hint, g.output.indented())
}

// cpu returns the gateway's CPU time so far, user plus system, over all its
// threads.
func (g *gateway) cpu() (time.Duration, error) {
	select {
	case <-g.exited:
		return 0, g.exitError()
	default:
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(g.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("gateway CPU time: %w", err)
	}
	d, err := parseStatCPU(string(b))
	if err != nil {
		return 0, fmt.Errorf("gateway CPU time: %w", err)
	}
	return d, nil
}

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which Linux fixes at 100 on every architecture Go runs on. Its 10ms
// granularity is why a measured run should take a second or more of
// gateway CPU.
const clockTick = 10 * time.Millisecond

// parseStatCPU returns utime+stime from the contents of /proc/PID/stat.
// The command name (field 2) is in parentheses and may itself hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat %.40q: no command name", stat)
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least %d", len(fields), stime+1)
	}
	var ticks int64
	for _, f := range []int{utime, stime} {
		n, err := strconv.ParseInt(fields[f], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc stat field %d: %w", f+3, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// stop stops the gateway and removes its temporary directory.
func (g *gateway) stop() {
	g.stopProcess()
	os.RemoveAll(g.dir)
}

// stopProcess asks the gateway to exit, kills it if it has not within
// stopGrace, and waits for it either way.
func (g *gateway) stopProcess() {
	g.once.Do(func() {
		g.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-g.exited:
		case <-t.C:
			g.cmd.Process.Kill()
			<-g.exited
		}
	})
}

// checkSwitchbackHeaders reports whether the switchback site passes its
// routing decision to the backend, as the backend echoes it. A missing
// decision does not stop the benchmark, but the caller should say so.
func checkSwitchbackHeaders(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-User-ID", "loadbench-check")
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return fmt.Errorf("check switchback headers: %w", err)
	}
	defer resp.Body.Close()
	var echo struct {
		Switchback struct {
			Pool string `json:"pool"`
		} `json:"switchback"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		return fmt.Errorf("check switchback headers: decode backend echo: %w", err)
	}
	if echo.Switchback.Pool == "" {
		return errors.New("the switchback site did not send " + backend.HeaderPool + " upstream; is it routing?")
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it: the gateway's output,
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
	b.WriteString("gateway output (last lines):")
	for _, l := range lines {
		b.WriteString("\n    ")
		b.WriteString(l)
	}
	return b.String()
}
