package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

// eventsList is the answer of GET /api/v1/events.
type eventsList struct {
	Events []configstore.Event `json:"events"`
}

// handleEvents lists events newest first (?deployment=NAME&limit=N), or
// with ?follow=1 streams them as server-sent events: first the recent ones
// (oldest first), then each new one as it is recorded, with a comment every
// 15 s to keep proxies from closing the stream.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dep := q.Get("deployment")
	if dep != "" && !gateway.ValidName(dep) {
		writeError(w, &apiError{status: http.StatusBadRequest, field: "deployment", msg: fmt.Sprintf("deployment %q: not a deployment name", dep)})
		return
	}
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, &apiError{status: http.StatusBadRequest, field: "limit", msg: fmt.Sprintf("limit %q: want a whole number from 1 to 1000", v)})
			return
		}
		limit = n
	}
	follow := q.Get("follow")
	if follow != "" && follow != "0" && follow != "1" && follow != "true" && follow != "false" {
		writeError(w, &apiError{status: http.StatusBadRequest, field: "follow", msg: fmt.Sprintf("follow %q: want 1 or 0", follow)})
		return
	}
	recent, rev, err := s.store.EventsAt(r.Context(), dep, limit)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if follow != "1" && follow != "true" {
		if recent == nil {
			recent = []configstore.Event{}
		}
		writeJSON(w, http.StatusOK, eventsList{Events: recent})
		return
	}
	s.streamEvents(w, r, dep, recent, rev)
}

// streamEvents sends recent, then follows the log from rev, the revision
// recent was read at, so no event falls between the two.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, dep string, recent []configstore.Event, rev int64) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	send := func(ev configstore.Event) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Kind, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	slices.Reverse(recent)
	for _, ev := range recent {
		if send(ev) != nil {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}

	ctx := r.Context()
	evs := make(chan configstore.Event, 64)
	followErr := make(chan error, 1)
	go func() {
		followErr <- s.store.FollowEvents(ctx, rev, func(ev configstore.Event) {
			if dep == "" || ev.Deployment == dep {
				select {
				case evs <- ev:
				case <-ctx.Done():
				}
			}
		})
	}()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			<-followErr
			return
		case err := <-followErr:
			// The store's watch ended; tell the client to reconnect.
			fmt.Fprintf(w, "event: error\ndata: %q\n\n", err.Error())
			_ = rc.Flush()
			return
		case ev := <-evs:
			if send(ev) != nil {
				return
			}
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// handleGuard shows what this instance's guard sees of a deployment: each
// pool's and flag cohort's window, breaches, active health of the pools
// (when the rollback target was last verified healthy) and retention.
func (s *Server) handleGuard(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if s.guard == nil {
		writeError(w, &apiError{status: http.StatusNotFound, field: "name", msg: "this instance runs no guard"})
		return
	}
	view, ok := s.guard(name)
	if !ok {
		writeError(w, &apiError{status: http.StatusNotFound, field: "name",
			msg: fmt.Sprintf("deployment %q is not served by this instance, or its guard has not run yet", name)})
		return
	}
	writeJSON(w, http.StatusOK, view)
}
