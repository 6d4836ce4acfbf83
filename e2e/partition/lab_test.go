//go:build linux

// Package partition runs etcd members and gateways on separate hosts
// (network namespaces on a private bridge) and cuts links between them, to
// show what Switchback guarantees under a partition. The tests need root
// and a kernel that allows network namespaces; elsewhere they skip, saying
// why.
package partition

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bins are the programs the tests run on their hosts, built once.
var bins struct {
	once                     sync.Once
	dir                      string
	err                      error
	switchback, etcd, backnd string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

func build(t *testing.T) {
	t.Helper()
	bins.once.Do(func() {
		if bins.dir, bins.err = os.MkdirTemp("", "switchback-partition-"); bins.err != nil {
			return
		}
		for _, b := range []struct {
			out *string
			pkg string
		}{
			{&bins.switchback, "github.com/a8e2c47e/switchback/cmd/switchback"},
			{&bins.etcd, "github.com/a8e2c47e/switchback/e2e/partition/etcdmember"},
			{&bins.backnd, "github.com/a8e2c47e/switchback/examples/backend/cmd/backend"},
		} {
			*b.out = filepath.Join(bins.dir, filepath.Base(b.pkg))
			out, err := exec.Command("go", "build", "-o", *b.out, b.pkg).CombinedOutput()
			if err != nil {
				bins.err = fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
}

// lab is a private network: a hub namespace holding a bridge, and hosts,
// each a namespace with one veth to the bridge and an address 10.231.N.x.
// Nothing in it touches the test machine's own namespace.
type lab struct {
	t     *testing.T
	id    string
	octet int
	hub   string
	hosts []*host
}

type host struct {
	lab  *lab
	name string // short: e1, g1, ...
	ns   string
	ip   string
}

// ipCmd runs ip(8) or another command and fails the test on error.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// newLab skips the test unless it can create network namespaces.
func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition tests need root to create network namespaces (run make test as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition tests need ip(8) from iproute2 (.ci/run installs it)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("partition tests need iptables to cut links (.ci/run installs it)")
	}
	pid := os.Getpid()
	l := &lab{t: t, id: fmt.Sprintf("sbp%d", pid), octet: 20 + pid%200}
	l.hub = l.id + "-hub"
	if out, err := exec.Command("ip", "netns", "add", l.hub).CombinedOutput(); err != nil {
		t.Skipf("the kernel refuses network namespaces here (ip netns add: %v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.hub).Run() })
	run(t, "ip", "-n", l.hub, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", l.hub, "link", "set", "br0", "up")
	// A probe: iptables inside a namespace may be refused by the kernel
	// (no netfilter modules) even where namespaces are allowed.
	if out, err := exec.Command("ip", "netns", "exec", l.hub, "iptables", "-L", "-n").CombinedOutput(); err != nil {
		t.Skipf("iptables does not work in a network namespace here: %v: %s", err, bytes.TrimSpace(out))
	}
	build(t)
	return l
}

// addHost creates a namespace named after the host, with address
// 10.231.<lab>.n on the lab's bridge and its own loopback.
func (l *lab) addHost(name string, n int) *host {
	t := l.t
	t.Helper()
	h := &host{lab: l, name: name, ns: l.id + "-" + name, ip: fmt.Sprintf("10.231.%d.%d", l.octet, n)}
	run(t, "ip", "netns", "add", h.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", h.ns).Run() })
	veth := "v" + name
	run(t, "ip", "-n", l.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	run(t, "ip", "-n", l.hub, "link", "set", veth, "master", "br0", "up")
	run(t, "ip", "-n", h.ns, "addr", "add", h.ip+"/24", "dev", "eth0")
	run(t, "ip", "-n", h.ns, "link", "set", "eth0", "up")
	run(t, "ip", "-n", h.ns, "link", "set", "lo", "up")
	l.hosts = append(l.hosts, h)
	return h
}

// cut drops every packet between a and b, both ways, silently (like a
// failed switch port, not a refused connection).
func (l *lab) cut(a, b *host) {
	l.t.Helper()
	for _, p := range [][2]*host{{a, b}, {b, a}} {
		run(l.t, "ip", "netns", "exec", p[0].ns, "iptables", "-A", "INPUT", "-s", p[1].ip, "-j", "DROP")
		run(l.t, "ip", "netns", "exec", p[0].ns, "iptables", "-A", "OUTPUT", "-d", p[1].ip, "-j", "DROP")
	}
}

// heal removes every cut.
func (l *lab) heal() {
	l.t.Helper()
	for _, h := range l.hosts {
		run(l.t, "ip", "netns", "exec", h.ns, "iptables", "-F")
	}
}

// proc is a program running on a host.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a program on h; it is stopped (SIGTERM, then SIGKILL after
// 15 s) when the test ends, and its output is logged if the test failed.
func (h *host) start(name string, env []string, prog string, args ...string) *proc {
	t := h.lab.t
	t.Helper()
	p := &proc{name: name, out: new(syncBuffer), done: make(chan struct{})}
	// ip netns exec execs the program, so the pid is the program's.
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", h.ns, prog}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, tail(p.out.String(), 3000))
		}
	})
	return p
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// dial opens a connection from inside h's namespace: the socket is made
// on an OS thread switched into it, and stays there.
func (h *host) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + h.ns)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, fmt.Errorf("setns %s: %w", h.ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		// A thread that cannot go back stays locked, so the runtime
		// ends it with this goroutine instead of reusing it.
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}

// client is an HTTP client whose connections start on h.
func (h *host) client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext:         h.dial,
		MaxIdleConnsPerHost: 16,
	}}
}
