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
	dep, rel := r.URL.Query().Get("deployment"), r.URL.Query().Get("release")
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
		state, err := c.fingerprint(r, a, dep, rel)
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

// fingerprint sums up what an open page shows that can change elsewhere;
// rel adds a release's status and rollback steps ("*": every release's
// status), which change without a version while a step runs.
func (c *Console) fingerprint(r *http.Request, a *api, dep, rel string) (string, error) {
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
	if rel != "" {
		if err := releasePrint(r, a, dep, rel, &b); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

func releasePrint(r *http.Request, a *api, dep, rel string, b *strings.Builder) error {
	list, err := a.Releases(r.Context(), dep)
	if err != nil {
		return err
	}
	for _, x := range list {
		if rel != "*" && x.ID != rel {
			continue
		}
		b.WriteString(" " + x.ID + "=" + string(x.Status))
		if x.Rollback != nil {
			for _, st := range x.Rollback.Steps {
				fmt.Fprintf(b, " %s:%s:%d:%d", st.Kind, st.Status, st.Started.UnixNano(), st.Finished.UnixNano())
			}
		}
	}
	return nil
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
