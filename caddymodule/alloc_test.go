package caddymodule

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// allocBudget is how many allocations per request switchback may add to
// what Caddy's reverse_proxy costs for a request that carries the same
// three X-Switchback-* headers (issue 15).
const allocBudget = 3

func init() {
	caddy.RegisterModule(new(staticHeaders))
	httpcaddyfile.RegisterHandlerDirective("switchback_test_headers", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		h.Next()
		if !h.NextArg() {
			return nil, h.ArgErr()
		}
		return &staticHeaders{Upstream: h.Val()}, nil
	})
	httpcaddyfile.RegisterDirectiveOrder("switchback_test_headers", httpcaddyfile.Before, "reverse_proxy")
}

// staticHeaders is reverse_proxy to one upstream behind the three headers
// switchback sets, set from shared slices and so without allocating: the
// baseline of what Caddy itself charges for three more request headers
// (its proxy encodes every request header into a debug logger's fields
// whether debug logging is on or not, and a bigger header map can grow
// when the proxy adds X-Forwarded-* and Via), which no handler can avoid.
// Like switchback, it holds its reverse_proxy rather than chaining to one.
type staticHeaders struct {
	Upstream string `json:"upstream"`
	rp       *reverseproxy.Handler
}

var (
	staticPool    = []string{"blue"}
	staticVersion = []string{"1"}
	staticFlags   = []string{"f0,f3"}
)

func (*staticHeaders) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.switchback_test_headers", New: func() caddy.Module { return new(staticHeaders) }}
}

func (s *staticHeaders) Provision(ctx caddy.Context) error {
	s.rp = &reverseproxy.Handler{Upstreams: reverseproxy.UpstreamPool{{Dial: s.Upstream}}}
	return s.rp.Provision(ctx)
}

func (s *staticHeaders) Cleanup() error { return s.rp.Cleanup() }

func (s *staticHeaders) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r.Header["X-Switchback-Pool"] = staticPool
	r.Header["X-Switchback-Version"] = staticVersion
	r.Header["X-Switchback-Flags"] = staticFlags
	return s.rp.ServeHTTP(w, r, next)
}

// rawBackend is an upstream that answers every request with the same bytes
// and allocates nothing per request, so that an allocation count taken over
// the whole process is the gateway's alone (plus the equally allocation-free
// rawClient). It keeps a copy of the last request head for checks.
type rawBackend struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex // guards last, conns and closed
	last   []byte
	conns  []net.Conn
	closed bool
}

const rawResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

func startRawBackend(t testing.TB) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln, last: make([]byte, 0, 4096)}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			if b.closed {
				b.mu.Unlock()
				c.Close()
				return
			}
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Go(func() { b.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		b.closed = true
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

// serve answers bodyless requests on one connection until it closes.
func (b *rawBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 8192)
	head := make([]byte, 0, 4096)
	resp := []byte(rawResponse)
	for {
		head = head[:0]
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			head = append(head, line...)
			if len(line) <= 2 { // "\r\n": end of the head
				break
			}
		}
		b.mu.Lock()
		b.last = append(b.last[:0], head...)
		b.mu.Unlock()
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// lastHead returns the head of the last request the backend received.
func (b *rawBackend) lastHead() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.last)
}

func (b *rawBackend) addr() string { return b.ln.Addr().String() }

// rawClient sends GET requests over one keep-alive connection from reused
// buffers, allocating nothing per request.
type rawClient struct {
	conn   net.Conn
	br     *bufio.Reader
	prefix []byte // request line and fixed headers
	suffix []byte // the rest after the subject
	req    []byte
	body   [64]byte
	user   int
}

// newRawClient dials addr; subjectLine is the header line the subject
// goes into, up to the subject itself (e.g. "X-User-ID: u").
func newRawClient(t testing.TB, addr, subjectLine string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{
		conn:   conn,
		br:     bufio.NewReaderSize(conn, 8192),
		prefix: fmt.Appendf(nil, "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n%s", addr, subjectLine),
		suffix: []byte("\r\n\r\n"),
		req:    make([]byte, 0, 512),
	}
}

var errBadResponse = errors.New("bad response")

// get sends one request for the next user and reads the whole answer.
func (c *rawClient) get() error {
	c.user++
	c.req = append(c.req[:0], c.prefix...)
	c.req = strconv.AppendInt(c.req, int64(c.user), 10)
	c.req = append(c.req, c.suffix...)
	if _, err := c.conn.Write(c.req); err != nil {
		return err
	}
	status, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return errBadResponse
	}
	length := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v))) // the conversion does not escape
			if err != nil {
				return err
			}
			length = n
		}
	}
	if length < 0 || length > len(c.body) {
		return errBadResponse
	}
	_, err = io.ReadFull(c.br, c.body[:length])
	return err
}

// proxySite is one site of the comparison: a gateway configuration and the
// requests sent to it.
type proxySite struct {
	name   string
	sticky string // the client's subject line, up to the subject
	block  string // the site's handlers; %[1]s is the backend
	// switchback says the backend must see X-Switchback-Pool from a
	// routing decision.
	switchback bool
}

// referenceSites are the baselines: plain reverse_proxy, and reverse_proxy
// carrying the three headers at no cost of their own.
var referenceSites = []proxySite{
	{name: "reverse_proxy", sticky: "X-User-ID: u", block: "\treverse_proxy %[1]s\n"},
	{name: "reverse_proxy+3_headers", sticky: "X-User-ID: u", block: "\tswitchback_test_headers %[1]s\n"},
}

// switchbackSite is a deployment of two pools on the backend with n flags.
// The first flag is on for everyone, so every request carries all three
// headers, as the reverse_proxy+3_headers baseline does; the others are on
// for 10% to 91%, so the flag set changes from request to request.
func switchbackSite(name, sticky string, flags int, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tswitchback %s {\n\t\tpool blue %%[1]s\n\t\tpool green %%[1]s\n\t\tweights blue 50 green 50\n\t\tsticky %s\n", name, sticky)
	for i := range flags {
		fmt.Fprintf(&b, "\t\tflag f%d %d\n", i, max(100-i*9, 10))
	}
	b.WriteString(extra)
	b.WriteString("\t}\n")
	return b.String()
}

// The subject lines the client sends: a header, a returning visitor's
// cookie among others, and no subject at all (a first visit, which gets a
// cookie issued).
const (
	subjectHeader = "X-User-ID: u"
	subjectCookie = "Cookie: theme=dark; sb_uid=u"
	subjectNone   = "X-Request-ID: r"
)

// switchbackSites are the variants issue 15 holds to the budget, guarded
// (which needs the switchback app) or not.
func switchbackSites(guarded bool) []proxySite {
	if guarded {
		guard := "\t\tguard {\n\t\t\terror_rate 5%%\n\t\t}\n"
		return []proxySite{
			{name: "switchback+guard/header/flags=1", sticky: subjectHeader, block: switchbackSite("g1", "header X-User-ID", 1, guard), switchback: true},
			{name: "switchback+guard/cookie/flags=10", sticky: subjectCookie, block: switchbackSite("g10", "cookie sb_uid", 10, guard), switchback: true},
		}
	}
	return []proxySite{
		{name: "switchback/header/flags=1", sticky: subjectHeader, block: switchbackSite("h1", "header X-User-ID", 1, ""), switchback: true},
		{name: "switchback/header/flags=10", sticky: subjectHeader, block: switchbackSite("h10", "header X-User-ID", 10, ""), switchback: true},
		{name: "switchback/cookie/flags=1", sticky: subjectCookie, block: switchbackSite("c1", "cookie sb_uid", 1, ""), switchback: true},
		{name: "switchback/cookie/flags=10", sticky: subjectCookie, block: switchbackSite("c10", "cookie sb_uid", 10, ""), switchback: true},
	}
}

// issuingSite answers first visits: every request gets a cookie issued.
var issuingSite = proxySite{name: "switchback/cookie_issued/flags=1", sticky: subjectNone, block: switchbackSite("i1", "cookie sb_uid", 1, ""), switchback: true}

// startSites runs one Caddy with a site per proxySite, all proxying to be,
// and returns a client per site, by name.
func startSites(t testing.TB, be *rawBackend, global string, sites []proxySite) map[string]*rawClient {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	var src strings.Builder
	fmt.Fprintf(&src, "{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n\t%s\n}\n", global)
	ports := make([]int, len(sites))
	for i, s := range sites {
		ports[i] = testharness.FreePort(t)
		fmt.Fprintf(&src, "http://127.0.0.1:%d {\n%s}\n", ports[i], fmt.Sprintf(s.block, be.addr()))
	}
	caddytest.Run(t, src.String())
	clients := make(map[string]*rawClient)
	for i, s := range sites {
		c := newRawClient(t, "127.0.0.1:"+strconv.Itoa(ports[i]), s.sticky)
		if err := c.get(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if head := be.lastHead(); s.switchback && !strings.Contains(head, "X-Switchback-Pool: ") {
			t.Fatalf("%s: the backend got no X-Switchback-Pool, so switchback did not route:\n%s", s.name, head)
		}
		clients[s.name] = c
	}
	return clients
}

// allocsPerRequest counts the allocations of one request through c's site,
// client and backend included (they allocate nothing). The count is taken
// a few times and the least kept: allocation counts are deterministic, and
// whatever else runs in the process (timers, an embedded etcd) only adds.
func allocsPerRequest(t *testing.T, c *rawClient) float64 {
	t.Helper()
	var failed error
	get := func() {
		if err := c.get(); err != nil && failed == nil {
			failed = err
		}
	}
	for range 50 { // warm up: connections, pools, lazily built state
		get()
	}
	least := -1.0
	for range 3 {
		n := testing.AllocsPerRun(300, get)
		if least < 0 || n < least {
			least = n
		}
	}
	if failed != nil {
		t.Fatalf("request failed: %v", failed)
	}
	return least
}

// TestAllocsPerRequest holds switchback to at most allocBudget allocations
// per request more than reverse_proxy carrying the same three headers, for
// 1 to 10 flags, a header or a cookie subject, with and without a guard, in
// one process against an allocation-free backend and client.
func TestAllocsPerRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy and etcd")
	}
	if raceEnabled {
		t.Skip("the race detector changes what allocates; make bench runs this test without it")
	}
	be := startRawBackend(t)
	e := etcdtest.Start(t)
	app := fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoint(), t.TempDir())
	for _, guarded := range []bool{false, true} {
		global := ""
		if guarded {
			// The guard needs the switchback app and its store; the
			// baselines are measured again beside it, under the same etcd.
			global = app
		}
		sites := append(append([]proxySite(nil), referenceSites...), switchbackSites(guarded)...)
		if !guarded {
			sites = append(sites, issuingSite)
		}
		clients := startSites(t, be, global, sites)
		got := make(map[string]float64)
		for _, s := range sites {
			got[s.name] = allocsPerRequest(t, clients[s.name])
		}
		plain, ref := got["reverse_proxy"], got["reverse_proxy+3_headers"]
		t.Logf("reverse_proxy: %.0f allocs/request; carrying three headers: %.0f", plain, ref)
		for _, s := range sites[len(referenceSites):] {
			n := got[s.name]
			t.Logf("%s: %.0f allocs/request (%+.0f vs reverse_proxy, %+.0f vs reverse_proxy+3_headers)", s.name, n, n-plain, n-ref)
			if n > ref+allocBudget {
				t.Errorf("%s: %.0f allocs/request, want at most %.0f (reverse_proxy carrying the three headers, %.0f, plus %d)", s.name, n, ref+allocBudget, ref, allocBudget)
			}
		}
	}
}
