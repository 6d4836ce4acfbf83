package ofrep

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// writeTimeout bounds one write to an event stream.
const writeTimeout = 10 * time.Second

// events serves GET /ofrep/v1/events?deployment=NAME: server-sent events,
// one refetchEvaluation per new version of the deployment (ADR-0008). The
// event id is the version, so a client reconnecting with Last-Event-ID is
// told at once when it missed one.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeGeneral(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
		return
	}
	q := r.URL.Query()
	name := q.Get("deployment")
	p, status, msg := s.streamCaller(r, name)
	if status != 0 {
		writeGeneral(w, status, msg)
		return
	}
	v, e := s.pick(name, p)
	if e != nil {
		writeGeneral(w, e.status, e.details)
		return
	}
	name = v.snap.Name()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	// A client that stops reading must not hold the stream's goroutine
	// for ever: every write gets a deadline (the server has no
	// WriteTimeout, or streams could not stay open).
	send := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := fmt.Fprintf(w, format, args...)
		return err == nil && rc.Flush() == nil
	}
	s.metrics.streamOpen(1)
	defer s.metrics.streamOpen(-1)
	w.WriteHeader(http.StatusOK)
	if !send("retry: 1000\n\n") {
		return
	}

	sent := v.snap.Version()
	if last := r.Header.Get("Last-Event-ID"); last != "" && last != uitoa(sent) {
		sent = 0 // missed at least one: say so now
	}
	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	for {
		changed, notified := s.hub.wait(name)
		current := notified
		if snap, ok := s.src.Snapshot(name); ok && snap.Version() > current {
			current = snap.Version()
		}
		if current != sent {
			sent = current
			if !send("id: %d\nevent: message\ndata: {\"type\":\"refetchEvaluation\",\"etag\":\"%d\"}\n\n", sent, sent) {
				return
			}
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			if !send(": keep-alive\n\n") {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.hub.done:
			return
		}
	}
}

// streamCaller authenticates an event-stream request: a token in the
// headers, or the token name and signature the bulk response put in the
// URL; without tokens, a loopback client.
func (s *Server) streamCaller(r *http.Request, deployment string) (Principal, int, string) {
	if s.tokens == nil {
		return s.authenticate(r)
	}
	if _, ok := presented(r); ok {
		return s.authenticate(r)
	}
	q := r.URL.Query()
	name, sig := q.Get("token"), q.Get("sig")
	if name == "" || sig == "" {
		return Principal{}, http.StatusUnauthorized, "missing token: use the eventStreams address of a bulk evaluation, or send Authorization: Bearer <token>"
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(sig)), []byte(s.sign(name, deployment))) != 1 {
		return Principal{}, http.StatusUnauthorized, "bad signature: use the eventStreams address of a bulk evaluation unchanged"
	}
	p, ok := s.tokens.Named(name)
	if !ok {
		return Principal{}, http.StatusUnauthorized, "token " + name + " is no longer configured"
	}
	return p, 0, ""
}
