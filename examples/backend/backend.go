// Package backend is the example upstream that Switchback routes to in
// `make run`, in integration tests and in benchmarks.
//
// Every response says which pool and release answered and echoes the
// X-Switchback-* headers the gateway added, so a test can see where a
// request went and what the gateway decided. Faults (errors, latency,
// failing health checks) can be injected at run time over HTTP, so a test
// can drive a rollback without restarting anything.
//
// Endpoints:
//
//	GET    /health  200 "ok", or 503 while the faults say healthy=false
//	GET    /_fault  the current fault settings as JSON
//	PUT    /_fault  replace the settings; fields left out take their defaults
//	POST   /_fault  change only the fields present in the body
//	DELETE /_fault  back to the defaults (no faults)
//	GET    /_stats  {"requests": N, "errors": M}
//	*      any other path: the echo, subject to the faults
//
// A fault body looks like
//
//	{"error_rate": 0.5, "latency": "200ms", "status": 503, "healthy": true}
//
// error_rate is the fraction (0 to 1) of echo requests answered with status
// (default 500) instead; latency (a Go duration, at most 1m) is added to
// every echo request before it is answered. The counters in /_stats cover
// echo requests only: health checks and control requests are not counted.
//
// It imports nothing of this module, so tests (internal/testharness),
// benchmarks and `make run` can all start it.
package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Request headers set by the gateway and echoed back in the body.
const (
	HeaderPool    = "X-Switchback-Pool"
	HeaderFlags   = "X-Switchback-Flags"
	HeaderVersion = "X-Switchback-Version"
)

// Response headers that name the answering backend, for load tools that
// would rather not parse the body.
const (
	HeaderBackendPool    = "X-Backend-Pool"
	HeaderBackendRelease = "X-Backend-Release"
)

// Limits on what /_fault accepts.
const (
	MaxLatency     = time.Minute
	MinFaultStatus = 400
	MaxFaultStatus = 599

	maxFaultBody = 64 << 10
)

// Server is the backend's http.Handler. Create it with New.
type Server struct {
	pool    string
	release string

	// Response header values, built once and shared by every response:
	// nothing in this package or in net/http modifies them in place.
	poolHeader    []string
	releaseHeader []string
	faultBody     []byte // body of an injected error, precomputed

	faults atomic.Pointer[faults]

	requests atomic.Uint64
	errors   atomic.Uint64
}

// New returns a backend that reports itself as the given pool and release.
func New(pool, release string) *Server {
	s := &Server{
		pool:          pool,
		release:       release,
		poolHeader:    []string{pool},
		releaseHeader: []string{release},
	}
	b := append([]byte(nil), `{"error":"injected fault","pool":`...)
	b = appendJSONString(b, pool)
	b = append(b, `,"release":`...)
	b = appendJSONString(b, release)
	s.faultBody = append(b, "}\n"...)
	s.faults.Store(&defaultFaults)
	return s
}

// faults is one immutable set of fault settings; a change stores a new one.
type faults struct {
	errorRate float64
	latency   time.Duration
	status    int
	healthy   bool
	// flag, when set, limits errors and latency to requests that carry
	// this flag in X-Switchback-Flags: a bad feature rather than a bad pool.
	flag string
}

// applies reports whether the faults hit this request.
func (f *faults) applies(r *http.Request) bool {
	if f.flag == "" {
		return true
	}
	for _, on := range strings.Split(r.Header.Get(HeaderFlags), ",") {
		if on == f.flag {
			return true
		}
	}
	return false
}

var defaultFaults = faults{status: http.StatusInternalServerError, healthy: true}

var jsonContentType = []string{"application/json"}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/health":
		s.serveHealth(w)
	case "/_fault":
		s.serveFault(w, r)
	case "/_stats":
		s.serveStats(w, r)
	default:
		s.serveEcho(w, r)
	}
}

func (s *Server) serveHealth(w http.ResponseWriter) {
	if !s.faults.Load().healthy {
		http.Error(w, "unhealthy", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// Echo is the body of an echo answer: who answered, the path asked for,
// and the X-Switchback-* headers the gateway sent (empty when absent).
// serveEcho writes it by hand, to allocate nothing; tests decode it.
type Echo struct {
	Pool       string `json:"pool"`
	Release    string `json:"release"`
	Path       string `json:"path"`
	Switchback struct {
		Pool    string `json:"pool"`
		Flags   string `json:"flags"`
		Version string `json:"version"`
	} `json:"switchback"`
}

// echoBuffers holds the buffers echo bodies are built in, so that a
// request allocates nothing for its body.
var echoBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (s *Server) serveEcho(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	f := s.faults.Load()

	h := w.Header()
	h["Content-Type"] = jsonContentType
	h[HeaderBackendPool] = s.poolHeader
	h[HeaderBackendRelease] = s.releaseHeader

	hit := f.applies(r)
	if hit && f.latency > 0 && !sleep(r.Context(), f.latency) {
		return // the client has gone; nobody will read an answer
	}
	if hit && f.errorRate > 0 && rand.Float64() < f.errorRate {
		s.errors.Add(1)
		w.WriteHeader(f.status)
		w.Write(s.faultBody)
		return
	}

	bp := echoBuffers.Get().(*[]byte)
	b := append((*bp)[:0], `{"pool":`...)
	b = appendJSONString(b, s.pool)
	b = append(b, `,"release":`...)
	b = appendJSONString(b, s.release)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.URL.Path)
	b = append(b, `,"switchback":{"pool":`...)
	b = appendJSONString(b, r.Header.Get(HeaderPool))
	b = append(b, `,"flags":`...)
	b = appendJSONString(b, r.Header.Get(HeaderFlags))
	b = append(b, `,"version":`...)
	b = appendJSONString(b, r.Header.Get(HeaderVersion))
	b = append(b, "}}\n"...)
	w.Write(b)
	*bp = b
	echoBuffers.Put(bp)
}

// sleep waits for d, or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Stats are the counters /_stats reports.
type Stats struct {
	Requests uint64 `json:"requests"` // echo requests received
	Errors   uint64 `json:"errors"`   // of those, answered with an injected error
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Errors: s.errors.Load()}
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeMethodNotAllowed(w, "GET, HEAD")
		return
	}
	writeJSON(w, http.StatusOK, s.Stats())
}

// FaultSettings is the JSON form of the fault settings, as /_fault reports
// them.
type FaultSettings struct {
	ErrorRate float64 `json:"error_rate"`
	Latency   string  `json:"latency"`
	Status    int     `json:"status"`
	Healthy   bool    `json:"healthy"`
	Flag      string  `json:"flag,omitempty"`
}

func (f *faults) settings() FaultSettings {
	return FaultSettings{
		ErrorRate: f.errorRate,
		Latency:   f.latency.String(),
		Status:    f.status,
		Healthy:   f.healthy,
		Flag:      f.flag,
	}
}

func (s *Server) serveFault(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodDelete:
		s.faults.Store(&defaultFaults)
	case http.MethodPut, http.MethodPost:
		p, err := decodeFaultPatch(http.MaxBytesReader(w, r.Body, maxFaultBody))
		if err != nil {
			writeError(w, err)
			return
		}
		if r.Method == http.MethodPut {
			next := p.apply(defaultFaults)
			s.faults.Store(&next)
			break
		}
		// Compare-and-swap so that concurrent POSTs changing different
		// fields do not undo each other.
		for {
			cur := s.faults.Load()
			next := p.apply(*cur)
			if s.faults.CompareAndSwap(cur, &next) {
				break
			}
		}
	default:
		writeMethodNotAllowed(w, "GET, HEAD, PUT, POST, DELETE")
		return
	}
	writeJSON(w, http.StatusOK, s.faults.Load().settings())
}

// faultPatch holds the fields present in a /_fault body, already validated.
type faultPatch struct {
	errorRate *float64
	latency   *time.Duration
	status    *int
	healthy   *bool
	flag      *string
}

func (p faultPatch) apply(f faults) faults {
	if p.errorRate != nil {
		f.errorRate = *p.errorRate
	}
	if p.latency != nil {
		f.latency = *p.latency
	}
	if p.status != nil {
		f.status = *p.status
	}
	if p.healthy != nil {
		f.healthy = *p.healthy
	}
	if p.flag != nil {
		f.flag = *p.flag
	}
	return f
}

// FieldError is a rejected /_fault body. Field is empty when the body as a
// whole is wrong rather than one field.
type FieldError struct {
	Message string `json:"error"`
	Field   string `json:"field,omitempty"`
}

func (e *FieldError) Error() string { return e.Message }

var faultFields = []string{"error_rate", "latency", "status", "healthy", "flag"}

// decodeFaultPatch reads and validates a /_fault body. It decodes field by
// field, rather than into a struct, so that each error can name its field
// and quote the value it was given.
func decodeFaultPatch(body io.Reader) (faultPatch, error) {
	const example = `{"error_rate": 0.5, "latency": "200ms", "status": 503, "healthy": true}`
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(body)
	if err := dec.Decode(&raw); err != nil || raw == nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return faultPatch{}, &FieldError{Message: fmt.Sprintf("body is over %d bytes; want a JSON object such as %s", tooBig.Limit, example)}
		}
		msg := "body must be a JSON object such as " + example
		if err != nil {
			msg += ": " + err.Error()
		}
		return faultPatch{}, &FieldError{Message: msg}
	}
	if _, err := dec.Token(); err != io.EOF {
		return faultPatch{}, &FieldError{Message: "body must hold a single JSON object such as " + example + ", but more follows it"}
	}

	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(faultFields, k) {
			return faultPatch{}, &FieldError{Field: k, Message: fmt.Sprintf("%s: unknown field; want one of error_rate, latency, status, healthy, flag", quoteField(k))}
		}
	}

	var p faultPatch
	if v, ok := raw["error_rate"]; ok {
		var rate float64
		if json.Unmarshal(v, &rate) != nil || isNull(v) {
			return faultPatch{}, fieldErr("error_rate", v, "is not a number", "a number from 0 to 1")
		}
		if !(rate >= 0 && rate <= 1) {
			return faultPatch{}, fieldErr("error_rate", v, "is out of range", "a number from 0 to 1")
		}
		p.errorRate = &rate
	}
	if v, ok := raw["latency"]; ok {
		const want = `a Go duration from "0s" to "1m0s", such as "200ms"`
		var s string
		if json.Unmarshal(v, &s) != nil || isNull(v) {
			return faultPatch{}, fieldErr("latency", v, "is not a string", want)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return faultPatch{}, fieldErr("latency", v, "is not a duration", want)
		}
		if d < 0 || d > MaxLatency {
			return faultPatch{}, fieldErr("latency", v, "is out of range", want)
		}
		p.latency = &d
	}
	if v, ok := raw["status"]; ok {
		want := fmt.Sprintf("an HTTP status from %d to %d", MinFaultStatus, MaxFaultStatus)
		var status int
		if json.Unmarshal(v, &status) != nil || isNull(v) {
			return faultPatch{}, fieldErr("status", v, "is not an integer", want)
		}
		if status < MinFaultStatus || status > MaxFaultStatus {
			return faultPatch{}, fieldErr("status", v, "is not an error status", want)
		}
		p.status = &status
	}
	if v, ok := raw["healthy"]; ok {
		var healthy bool
		if json.Unmarshal(v, &healthy) != nil || isNull(v) {
			return faultPatch{}, fieldErr("healthy", v, "is not a boolean", "true or false")
		}
		p.healthy = &healthy
	}
	if v, ok := raw["flag"]; ok {
		var flag string
		if json.Unmarshal(v, &flag) != nil || isNull(v) || strings.ContainsAny(flag, ", ") {
			return faultPatch{}, fieldErr("flag", v, "is not a flag name", `a flag name such as "new_payment_flow" ("" for every request)`)
		}
		p.flag = &flag
	}
	return p, nil
}

func isNull(v json.RawMessage) bool { return string(v) == "null" }

func fieldErr(field string, value json.RawMessage, problem, want string) *FieldError {
	v := string(value)
	if len(v) > 64 {
		v = v[:61] + "..."
	}
	return &FieldError{Field: field, Message: fmt.Sprintf("%s: %s %s; want %s", field, v, problem, want)}
}

// quoteField quotes an unknown field name only when it needs it, so the
// usual case reads naturally.
func quoteField(k string) string {
	if k == "" || len(k) > 64 {
		return fmt.Sprintf("%.64q", k)
	}
	for _, c := range k {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Sprintf("%q", k)
		}
	}
	return k
}

func writeError(w http.ResponseWriter, err error) {
	var fe *FieldError
	if !errors.As(err, &fe) {
		fe = &FieldError{Message: err.Error()}
	}
	writeJSON(w, http.StatusBadRequest, fe)
}

func writeMethodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, &FieldError{Message: "method not allowed; want one of " + allow})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed types are written here, and they all marshal.
		panic(fmt.Sprintf("backend: marshal %T: %v", v, err))
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s to b as a JSON string. Invalid UTF-8 becomes
// U+FFFD, byte by byte, as encoding/json does; unlike encoding/json it does
// not escape <, > and &, which only matters when JSON is embedded in HTML.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

var _ http.Handler = (*Server)(nil)
