// Package ofrep serves Switchback's flags over the OpenFeature Remote
// Evaluation Protocol (OFREP, github.com/open-feature/protocol,
// service/openapi.yaml), so any OpenFeature SDK with an OFREP provider
// evaluates the same flags the gateway decides, with no vendor SDK:
//
//	POST /ofrep/v1/evaluate/flags/{key}   one flag, for server-side providers
//	POST /ofrep/v1/evaluate/flags         every flag, for web and mobile providers;
//	                                      ETag / If-None-Match → 304, and an
//	                                      eventStreams entry (ADR-0008)
//	GET  /ofrep/v1/events?deployment=     the server-sent events stream the
//	                                      eventStreams entry points to: one
//	                                      refetchEvaluation event per new version
//
// The evaluation context's targetingKey is the subject: the answer for a
// subject is what the gateway decides for a request carrying that sticky id,
// from the same snapshot with the same bucketing (gateway.Snapshot.Decide),
// so a flag that is on for a user at the edge is on for that user in a
// background job too. Every flag is boolean; variant is "on" or "off";
// reason is SPLIT for a percentage strictly between 0 and 100, STATIC at 0
// or 100, and DISABLED for a flag that was switched off: at 0% now after
// being above 0% in an earlier version (a kill by an operator, or the guard's
// fallback). A flag that has been at 0% in every version seen is merely
// declared, STATIC. Metadata carries the deployment, its version and the
// flag's percentage.
//
// Callers present a flags token (Authorization: Bearer or X-API-Key); the
// event-stream address in a bulk answer is signed instead, as EventSource
// sends no headers. With tokens, any origin may call (CORS), since tokens
// are never cookies. Without tokens only this host is served: a loopback
// client, with a loopback Host (no DNS rebinding), and no CORS.
//
// It knows nothing of Caddy or etcd: it reads live snapshots through Source
// and is told of new ones through Changed.
package ofrep

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8e2c47e/switchback/gateway"
)

// Source gives the server the live deployments.
type Source interface {
	// Deployments lists the names of the deployments served.
	Deployments() []string
	// Snapshot returns a deployment's live snapshot; false when the
	// deployment is not served or has no snapshot yet.
	Snapshot(name string) (*gateway.Snapshot, bool)
}

// Principal is the holder of a flags token.
type Principal struct {
	// Name is the token's name.
	Name string
	// Deployment is the token's default deployment, "" for none.
	Deployment string
}

// Tokens authenticates callers. Without it only loopback clients are served.
type Tokens interface {
	// Lookup finds the principal of a presented token.
	Lookup(token string) (Principal, bool)
	// Named finds a principal by its token's name, so a signed event-stream
	// URL stops working when its token is removed.
	Named(name string) (Principal, bool)
}

// Options configure a Server.
type Options struct {
	// Source is required.
	Source Source
	// Tokens; nil serves loopback clients only, like the admin API without
	// a tokens file.
	Tokens Tokens
	// StreamKey signs event-stream URLs, which browsers open with
	// EventSource and so cannot carry an Authorization header. Instances
	// behind one load balancer need the same key; empty means a random key
	// for this server.
	StreamKey []byte
	// Heartbeat is how often an idle event stream sends a comment, so
	// proxies keep it open; default 15s.
	Heartbeat time.Duration
	// InactivityDelay is the eventStreams entry's inactivityDelaySec: how
	// long a hidden browser tab keeps its stream; 0 leaves it to the client.
	InactivityDelay time.Duration
	// Registerer receives the metrics (switchback_ofrep_*); nil means none.
	Registerer prometheus.Registerer
}

// Paths served.
const (
	PathEvaluate = "/ofrep/v1/evaluate/flags"
	PathEvents   = "/ofrep/v1/events"
)

// maxBody bounds an evaluation request; a context is a few attributes.
const maxBody = 64 << 10

// Server is the OFREP HTTP handler. Close ends its open event streams.
type Server struct {
	src       Source
	tokens    Tokens
	key       []byte
	heartbeat time.Duration
	inactive  int
	metrics   *metrics

	// mu protects views and seen.
	mu    sync.Mutex
	views map[string]*view
	// seen holds, per deployment, the flags seen above 0% in some version:
	// what tells a killed flag from one that was never rolled out.
	seen map[string]map[string]bool

	hub hub
}

// New returns a server reading opts.Source.
func New(opts Options) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("ofrep: no source")
	}
	s := &Server{
		src:       opts.Source,
		tokens:    opts.Tokens,
		key:       opts.StreamKey,
		heartbeat: opts.Heartbeat,
		inactive:  int(opts.InactivityDelay / time.Second),
		metrics:   newMetrics(opts.Registerer),
		views:     make(map[string]*view),
		seen:      make(map[string]map[string]bool),
	}
	if s.heartbeat <= 0 {
		s.heartbeat = 15 * time.Second
	}
	if len(s.key) == 0 {
		s.key = make([]byte, 32)
		_, _ = rand.Read(s.key)
	}
	s.hub.init()
	return s, nil
}

// Close ends every open event stream and refuses new ones; evaluations go on.
func (s *Server) Close() { s.hub.close() }

// Changed tells the server a deployment has a new live snapshot: it is
// recorded (so a flag switched off in it reads DISABLED) and the
// deployment's event streams are told to refetch. It does not block.
func (s *Server) Changed(snap *gateway.Snapshot) {
	s.viewOf(snap)
	s.hub.notify(snap.Name(), snap.Version())
}

// Seen records flags of a deployment that were above 0% in versions older
// than this server, read from the store's history: a flag killed before a
// restart still answers DISABLED, as on instances that saw the kill.
func (s *Server) Seen(deployment string, flags ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.seen[deployment]
	if seen == nil {
		seen = make(map[string]bool)
		s.seen[deployment] = seen
	}
	for _, f := range flags {
		seen[f] = true
	}
	if v := s.views[deployment]; v != nil {
		s.views[deployment] = buildView(v.snap, seen)
	}
}

// ServeHTTP routes the OFREP endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if s.tokens != nil {
		// Web providers run in pages of other origins. Tokens travel in
		// headers, never cookies, so any origin may call with its token.
		// Without tokens the listener serves this host only, and a page
		// must not read it from the user's browser: no CORS at all.
		h := w.Header()
		h["Access-Control-Allow-Origin"] = corsAny
		h["Access-Control-Expose-Headers"] = corsExpose
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h["Access-Control-Allow-Methods"] = corsMethods
			h["Access-Control-Allow-Headers"] = corsHeaders
			h["Access-Control-Max-Age"] = corsMaxAge
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	switch {
	case path == PathEvaluate || path == PathEvaluate+"/":
		s.gate(w, r, endpointBulk, s.bulk)
	case strings.HasPrefix(path, PathEvaluate+"/"):
		s.gate(w, r, endpointSingle, s.single)
	case path == PathEvents:
		s.events(w, r)
	default:
		writeGeneral(w, http.StatusNotFound, "no such OFREP endpoint "+path+"; served: POST "+PathEvaluate+", POST "+PathEvaluate+"/{key}, GET "+PathEvents)
	}
}

var (
	corsAny     = []string{"*"}
	corsExpose  = []string{"ETag"}
	corsMethods = []string{"POST, GET"}
	corsHeaders = []string{"Authorization, X-API-Key, Content-Type, If-None-Match, Last-Event-ID"}
	corsMaxAge  = []string{"600"}
)

type handlerFunc func(http.ResponseWriter, *http.Request, Principal)

func (s *Server) gate(w http.ResponseWriter, r *http.Request, endpoint string, h handlerFunc) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeGeneral(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use POST")
		return
	}
	p, status, msg := s.authenticate(r)
	if status != 0 {
		outcome := outcomeForbidden
		if status == http.StatusUnauthorized {
			outcome = outcomeUnauthorized
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchback-ofrep"`)
		}
		s.metrics.request(endpoint, outcome)
		writeGeneral(w, status, msg)
		return
	}
	h(w, r, p)
}

// authenticate returns the caller, or a status and why not.
func (s *Server) authenticate(r *http.Request) (Principal, int, string) {
	if s.tokens == nil {
		if !isLoopback(r.RemoteAddr) {
			return Principal{}, http.StatusForbidden, "OFREP has no tokens file, so it only serves clients on this host; add flags tokens to the admin_tokens file to allow others"
		}
		if !loopbackHost(r.Host) {
			// DNS rebinding: a page's own name pointed at 127.0.0.1.
			return Principal{}, http.StatusForbidden, "Host " + strconv.Quote(r.Host) + " is not this host: without tokens OFREP answers requests to localhost or a loopback address only"
		}
		return Principal{}, 0, ""
	}
	token, ok := presented(r)
	if !ok {
		return Principal{}, http.StatusUnauthorized, "missing token: send Authorization: Bearer <token> or X-API-Key: <token>"
	}
	p, ok := s.tokens.Lookup(token)
	if !ok {
		return Principal{}, http.StatusUnauthorized, "unknown token (a token of role flags is needed)"
	}
	return p, 0, ""
}

// presented is the token of a request: Authorization: Bearer, else X-API-Key.
func presented(r *http.Request) (string, bool) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		token = strings.TrimSpace(token)
		return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
	}
	token := strings.TrimSpace(r.Header.Get("X-API-Key"))
	return token, token != ""
}

// loopbackHost reports whether a Host header names this host: localhost
// or a loopback address, with any port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func isLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// sign is the signature of an event-stream URL for a token name and a
// deployment.
func (s *Server) sign(token, deployment string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(token))
	m.Write([]byte{0})
	m.Write([]byte(deployment))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// view is what one snapshot answers, precomputed once per version.
type view struct {
	snap *gateway.Snapshot
	// killed has bit i set when flag i is at 0% after being above it.
	killed uint64
	names  []string
	// meta[i] is flag i's "metadata" JSON object, key[i] its quoted name.
	meta []string
	key  []string
	// setMeta is the bulk response's "metadata" object.
	setMeta string
}

// viewOf returns the view of snap, building it the first time snap is seen.
func (s *Server) viewOf(snap *gateway.Snapshot) *view {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := snap.Name()
	if v := s.views[name]; v != nil && v.snap == snap {
		return v
	}
	if v := s.views[name]; v != nil && v.snap.Version() > snap.Version() {
		// Changed has a newer snapshot than the Source: it is committed
		// and the Deployment stores it right after its binders commit.
		// Answer with it, so a client refetching on the event it caused
		// never reads the version before.
		return v
	}
	seen := s.seen[name]
	if seen == nil {
		seen = make(map[string]bool)
		s.seen[name] = seen
	}
	for i, f := range snap.FlagNames() {
		if snap.FlagPercent(i) > 0 {
			seen[f] = true
		}
	}
	v := buildView(snap, seen)
	s.views[name] = v
	return v
}

func buildView(snap *gateway.Snapshot, seen map[string]bool) *view {
	v := &view{snap: snap, names: snap.FlagNames()}
	version := snap.Version()
	for i, f := range v.names {
		bp := snap.FlagPercent(i)
		if bp == 0 && seen[f] {
			v.killed |= 1 << i
		}
		v.key = append(v.key, `"`+f+`"`)
		v.meta = append(v.meta, `{"deployment":"`+snap.Name()+`","version":`+uitoa(version)+`,"percent":`+
			gateway.FormatPercent(float64(bp)/100)+`}`)
	}
	v.setMeta = `{"deployment":"` + snap.Name() + `","version":` + uitoa(version) + `}`
	return v
}

// flagIndex finds a flag by name; names are sorted.
func (v *view) flagIndex(key string) int {
	lo, hi := 0, len(v.names)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if v.names[m] < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(v.names) && v.names[lo] == key {
		return lo
	}
	return -1
}

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// hub wakes the event streams of a deployment when it changes.
type hub struct {
	// mu protects waiters, versions and closed.
	mu sync.Mutex
	// waiters[name] is closed, and replaced, at the deployment's next change.
	waiters map[string]chan struct{}
	// versions[name] is the newest version notified. The Deployment stores
	// its new snapshot only after its binders commit, so a stream woken by
	// the commit would still read the old one from the Source.
	versions map[string]uint64
	// done is closed by close: every stream ends.
	done   chan struct{}
	closed bool
}

func (h *hub) init() {
	h.waiters = make(map[string]chan struct{})
	h.versions = make(map[string]uint64)
	h.done = make(chan struct{})
}

// wait returns a channel closed at the deployment's next change, and the
// newest version notified so far (0 for none).
func (h *hub) wait(name string) (<-chan struct{}, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.waiters[name]
	if !ok {
		ch = make(chan struct{})
		h.waiters[name] = ch
	}
	return ch, h.versions[name]
}

func (h *hub) notify(name string, version uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if version > h.versions[name] {
		h.versions[name] = version
	}
	if ch, ok := h.waiters[name]; ok {
		close(ch)
		delete(h.waiters, name)
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}
