package testharness

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// Relay forwards TCP connections on a loopback port to a target until
// paused: Pause cuts every connection and refuses new ones, as a network
// partition would, and Resume lets them through again.
type Relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and every pipe

	// mu protects paused and conns.
	mu     sync.Mutex
	paused bool
	conns  map[net.Conn]struct{}
}

// StartRelay relays to target (host:port, or a URL such as
// http://127.0.0.1:2379); it stops when the test ends.
func StartRelay(t testing.TB, target string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ln: ln, target: strings.TrimPrefix(target, "http://"), conns: make(map[net.Conn]struct{})}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		ln.Close()
		r.Pause()
		r.wg.Wait()
	})
	return r
}

// Endpoint is the relay's address as a URL: http://127.0.0.1:port.
func (r *Relay) Endpoint() string { return "http://" + r.ln.Addr().String() }

func (r *Relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		if r.paused {
			r.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		r.conns[c], r.conns[up] = struct{}{}, struct{}{}
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

func (r *Relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// Pause cuts every connection and refuses new ones until Resume.
func (r *Relay) Pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = true
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

// Resume lets new connections through again.
func (r *Relay) Resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = false
}
