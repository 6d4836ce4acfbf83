package admin

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a8e2c47e/switchback/affected"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/release"
)

// Affected is the answer of GET /api/v1/releases/{id}/affected: the
// requests that may have written data while a release served them (every
// method but GET, HEAD, OPTIONS and TRACE), as recorded by every live
// instance serving its deployment, merged and sorted by time.
//
// Each instance records in memory only: an instance that is not live any
// more took its entries with it, and one that restarted recorded only
// since (Since). An instance that serves the deployment and did not answer
// is listed in Missing, never silently left out.
type Affected struct {
	Release    string         `json:"release"`
	Name       string         `json:"name"`
	Deployment string         `json:"deployment"`
	Status     release.Status `json:"status"`
	// Entries of every instance, oldest first.
	Entries []AffectedEntry `json:"entries"`
	// Instances that answered, with what each holds and dropped.
	Instances []AffectedInstance `json:"instances"`
	// Missing are the instances serving the deployment that did not
	// answer, and why.
	Missing []MissingInstance `json:"missing"`
	// Dropped is the sum of the instances' dropped entries.
	Dropped uint64 `json:"dropped"`
}

// AffectedEntry is one recorded request and the instance that served it.
type AffectedEntry struct {
	Instance string `json:"instance"`
	affected.Entry
}

// AffectedInstance is what one instance holds of a release.
type AffectedInstance struct {
	Instance string `json:"instance"`
	// Recorded is false when the instance holds nothing of the release:
	// it never recorded it, or dropped it as too old.
	Recorded bool   `json:"recorded"`
	Entries  int    `json:"entries"`
	Dropped  uint64 `json:"dropped"`
	// DroppedUntil is the time of the newest dropped entry: the
	// instance's entries are missing from Since until then.
	DroppedUntil time.Time `json:"dropped_until,omitzero"`
	Capacity     int       `json:"capacity,omitempty"`
	// Since is when the instance began recording the release, Until when
	// it stopped (zero while it records).
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
}

// MissingInstance is an instance serving the deployment whose entries
// are not in the answer.
type MissingInstance struct {
	Instance string `json:"instance"`
	Error    string `json:"error"`
}

// affectedCSVHeader is the header row of the CSV form.
var affectedCSVHeader = []string{"time", "instance", "subject", "method", "path", "status", "request_id", "pool", "flags"}

// peerTimeout bounds one instance's answer; peerMaxBody its size (a full
// ring of 100,000 entries is some 25 MB of JSON).
const (
	peerTimeout = 10 * time.Second
	peerMaxBody = 512 << 20
)

// handleAffected answers GET /api/v1/releases/{id}/affected
// ?format=json|csv, merging every live instance's entries; with local=1
// (as the instances ask each other) only this instance's.
func (s *Server) handleAffected(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format := cmp.Or(q.Get("format"), "json")
	if format != "json" && format != "csv" {
		writeError(w, &apiError{status: http.StatusBadRequest, field: "format",
			msg: fmt.Sprintf("format %q: want json or csv", format)})
		return
	}
	local := q.Get("local")
	if local != "" && local != "1" {
		writeError(w, &apiError{status: http.StatusBadRequest, field: "local",
			msg: fmt.Sprintf("local %q: want 1 (this instance only) or nothing (every instance)", local)})
		return
	}
	id := r.PathValue("id")
	rel, _, err := s.store.FindRelease(r.Context(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		writeError(w, &apiError{status: http.StatusNotFound, field: "id",
			msg: fmt.Sprintf("release %q not found: give a release id or name, as 'switchback release list' shows", id)})
		return
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := Affected{Release: rel.ID, Name: rel.Name, Deployment: rel.Deployment, Status: rel.Status,
		Entries: []AffectedEntry{}, Instances: []AffectedInstance{}, Missing: []MissingInstance{}}
	if local == "1" {
		s.addAffected(&out, s.localAffected(rel))
	} else if err := s.mergeAffected(r, rel, &out); err != nil {
		s.writeErr(w, err)
		return
	}
	slices.SortStableFunc(out.Entries, func(a, b AffectedEntry) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Instance, b.Instance))
	})
	slices.SortFunc(out.Instances, func(a, b AffectedInstance) int { return strings.Compare(a.Instance, b.Instance) })
	slices.SortFunc(out.Missing, func(a, b MissingInstance) int { return strings.Compare(a.Instance, b.Instance) })
	if format == "csv" {
		writeAffectedCSV(w, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// localAffected is what this instance recorded of rel.
func (s *Server) localAffected(rel release.Release) Affected {
	inst := AffectedInstance{Instance: s.instance}
	var entries []AffectedEntry
	if s.affected != nil {
		if l, ok := s.affected(rel.Deployment, rel.ID); ok {
			inst = AffectedInstance{Instance: s.instance, Recorded: true, Entries: len(l.Entries), Dropped: l.Dropped,
				DroppedUntil: l.DroppedUntil, Capacity: l.Capacity, Since: l.Since, Until: l.Until}
			entries = make([]AffectedEntry, len(l.Entries))
			for i, e := range l.Entries {
				entries[i] = AffectedEntry{Instance: s.instance, Entry: e}
			}
		}
	}
	return Affected{Entries: entries, Instances: []AffectedInstance{inst}}
}

func (s *Server) addAffected(out *Affected, part Affected) {
	out.Entries = append(out.Entries, part.Entries...)
	out.Instances = append(out.Instances, part.Instances...)
	for _, in := range part.Instances {
		out.Dropped += in.Dropped
	}
}

// mergeAffected asks every live instance serving rel's deployment for its
// entries, with the caller's credentials, and merges the answers; this
// instance answers from memory.
func (s *Server) mergeAffected(r *http.Request, rel release.Release, out *Affected) error {
	serving, err := s.store.Applied(r.Context(), rel.Deployment)
	if err != nil {
		return err
	}
	admins, err := s.store.Admins(r.Context())
	if err != nil {
		return err
	}
	if _, ok := serving[s.instance]; !ok && s.instance != "" {
		// Not reported yet (just started), or the deployment went from
		// this instance's config: what it holds still counts.
		if part := s.localAffected(rel); part.Instances[0].Recorded {
			serving[s.instance] = 0
		}
	}
	asks := map[string]string{} // instance → admin URL
	for inst := range serving {
		base, ok := admins[inst]
		switch {
		case inst == s.instance:
			s.addAffected(out, s.localAffected(rel))
		case !ok:
			out.Missing = append(out.Missing, MissingInstance{Instance: inst,
				Error: "publishes no admin API address (its admin API is off, or it has not published it yet)"})
		default:
			asks[inst] = base
		}
	}
	// mu protects out while the instances answer.
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for inst, base := range asks {
		wg.Go(func() {
			part, err := s.peerAffected(r.Context(), base, rel.ID, r.Header.Get("Authorization"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Missing = append(out.Missing, MissingInstance{Instance: inst, Error: err.Error()})
				return
			}
			// Only the instance asked speaks for itself.
			part.Instances = slices.DeleteFunc(part.Instances, func(in AffectedInstance) bool { return in.Instance != inst })
			part.Entries = slices.DeleteFunc(part.Entries, func(e AffectedEntry) bool { return e.Instance != inst })
			if len(part.Instances) == 0 {
				out.Missing = append(out.Missing, MissingInstance{Instance: inst,
					Error: "the admin API at " + base + " answered for another instance: an instance on another host must publish an address others reach (admin_url in its switchback global option)"})
				return
			}
			s.addAffected(out, part)
		})
	}
	wg.Wait()
	return nil
}

// peerAffected fetches one instance's own entries from its admin API.
func (s *Server) peerAffected(ctx context.Context, base, id, authorization string) (Affected, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	u := strings.TrimSuffix(base, "/") + "/api/v1/releases/" + url.PathEscape(id) + "/affected?local=1&format=json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Affected{}, fmt.Errorf("admin API at %s: %w", base, err)
	}
	req.Header.Set("Accept", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := s.peers.Do(req)
	if err != nil {
		return Affected{}, fmt.Errorf("admin API at %s: %w", base, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, peerMaxBody)
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(body, 64<<10))
		return Affected{}, fmt.Errorf("admin API at %s: %w", base, apiErrorFrom(resp.StatusCode, data))
	}
	var part Affected
	if err := json.NewDecoder(body).Decode(&part); err != nil {
		return Affected{}, fmt.Errorf("admin API at %s: decode answer: %w", base, err)
	}
	return part, nil
}

// writeAffectedCSV writes the entries as CSV with a header row; what does
// not fit in rows (each instance's dropped count, the missing instances)
// goes in the X-Switchback-Dropped and X-Switchback-Missing headers.
func writeAffectedCSV(w http.ResponseWriter, a Affected) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", `attachment; filename="affected-`+a.Release+`.csv"`)
	dropped := make([]string, len(a.Instances))
	for i, in := range a.Instances {
		dropped[i] = in.Instance + "=" + strconv.FormatUint(in.Dropped, 10)
	}
	h.Set("X-Switchback-Dropped", strings.Join(dropped, ", "))
	if len(a.Missing) > 0 {
		missing := make([]string, len(a.Missing))
		for i, m := range a.Missing {
			missing[i] = m.Instance
		}
		h.Set("X-Switchback-Missing", strings.Join(missing, ", "))
	}
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(affectedCSVHeader)
	for _, e := range a.Entries {
		_ = cw.Write([]string{e.Time.UTC().Format(time.RFC3339Nano), e.Instance, e.Subject, e.Method, e.Path,
			strconv.Itoa(e.Status), e.RequestID, e.Pool, e.Flags})
	}
	cw.Flush()
}
