package console

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/admin"
)

// refreshEvery is how often an open page refreshes even when no version
// changed, for the guard's figures and the "ago" times.
const refreshEvery = 5 * time.Second

// handleLive streams "changed" server-sent events to an open page, which
// then fetches itself again and swaps its live parts. It asks the API every
// Options.Poll whether a version, an instance's applied version, the
// store's health or the events log changed, so changes made anywhere (the
// CLI, the guard, another instance) show within a second.
func (c *Console) handleLive(w http.ResponseWriter, r *http.Request, s *session) {
	dep := r.URL.Query().Get("deployment")
	if dep == "*" {
		dep = ""
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	a := c.apiFor(r, s)
	ctx := r.Context()
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	last, lastSent := "", time.Now()
	for {
		state, err := c.fingerprint(r, a, dep)
		if err != nil {
			state = "error: " + err.Error()
		}
		if last == "" {
			last = state
		}
		if state != last || time.Since(lastSent) >= refreshEvery {
			last, lastSent = state, time.Now()
			if _, err := fmt.Fprintf(w, "event: changed\ndata: %s\n\n", strings.ReplaceAll(state, "\n", " ")); err != nil || rc.Flush() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// A signed-out or expired session stops following.
		if _, ok := c.current(r); !ok {
			return
		}
	}
}

// fingerprint sums up what an open page shows that can change elsewhere.
func (c *Console) fingerprint(r *http.Request, a *api, dep string) (string, error) {
	var b strings.Builder
	var deps []admin.Deployment
	var err error
	if dep != "" {
		var d admin.Deployment
		d, err = a.Status(r.Context(), dep)
		deps = append(deps, d)
	} else {
		deps, err = a.List(r.Context())
	}
	if err != nil {
		return "", err
	}
	for _, d := range deps {
		b.WriteString(d.Name + "@" + strconv.FormatUint(d.Version, 10) + " " + d.Store)
		for _, in := range instances0(d.Instances) {
			b.WriteString(" " + in)
		}
		b.WriteByte(';')
	}
	evs, err := a.events(r.Context(), dep, 1)
	if err != nil {
		return "", err
	}
	if len(evs) > 0 {
		b.WriteString(" event " + evs[0].ID)
	}
	return b.String(), nil
}

func instances0(m map[string]uint64) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+strconv.FormatUint(v, 10))
	}
	// Map order varies; a sorted list keeps the fingerprint stable.
	slices.Sort(out)
	return out
}
