package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/a8e2c47e/switchback/drill/result"
	"github.com/a8e2c47e/switchback/gateway"
)

// Drill history: `switchback drill` records each result here, wherever it
// ran (the sandbox's own store, or staging's through its admin API), and
// `switchback drill history`, the runbook and the drill metrics read it.
//
//	GET  /api/v1/drills?limit=N&pattern=P   newest first (limit 1..1000, default 50)
//	POST /api/v1/drills                     one result, as `switchback drill --json` prints it

// DrillRecord is one stored drill result with its ID.
type DrillRecord struct {
	ID string `json:"id"`
	result.Result
}

// DrillList is the answer to GET /api/v1/drills.
type DrillList struct {
	Drills []DrillRecord `json:"drills"`
}

func (s *Server) drillRoutes() {
	s.Handle("GET /api/v1/drills", http.HandlerFunc(s.handleDrills), RoleViewer)
	s.Handle("POST /api/v1/drills", http.HandlerFunc(s.handleRecordDrill), RoleOperator)
}

func (s *Server) handleDrills(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, &apiError{status: http.StatusBadRequest, field: "limit", msg: fmt.Sprintf("limit %q: want a whole number from 1 to 1000", v)})
			return
		}
		limit = n
	}
	pattern := q.Get("pattern")
	// A pattern filter reads them all: the store keeps at most 1,000.
	read := limit
	if pattern != "" {
		read = 0
	}
	drills, err := s.store.Drills(r.Context(), read)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := DrillList{Drills: []DrillRecord{}}
	for _, d := range drills {
		rec := DrillRecord{ID: d.ID}
		if json.Unmarshal(d.Result, &rec.Result) != nil {
			continue // one damaged entry must not hide the history
		}
		if pattern != "" && rec.Pattern != pattern {
			continue
		}
		out.Drills = append(out.Drills, rec)
		if len(out.Drills) == limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRecordDrill(w http.ResponseWriter, r *http.Request) {
	var res result.Result
	if err := decodeBody(r, &res); err != nil {
		s.writeErr(w, err)
		return
	}
	if err := checkDrill(res); err != nil {
		s.writeErr(w, err)
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	id, err := s.store.AppendDrill(r.Context(), b)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, DrillRecord{ID: id, Result: res})
}

func checkDrill(res result.Result) error {
	if !gateway.ValidName(res.Pattern) {
		return &gateway.FieldError{Field: "pattern", Value: strconv.Quote(res.Pattern), Want: "want a pattern name such as flip, flag, config, migration or release"}
	}
	if res.Trigger != result.Manual && res.Trigger != result.Guard {
		return &gateway.FieldError{Field: "trigger", Value: strconv.Quote(string(res.Trigger)), Want: "want manual or guard"}
	}
	if res.Started.IsZero() {
		return &gateway.FieldError{Field: "started", Want: "want the time the drill started (RFC 3339)"}
	}
	return nil
}

// Drills returns stored drill results, newest first: at most limit (0:
// the API's default of 50), of one pattern when pattern is not empty.
func (c *Client) Drills(ctx context.Context, pattern string, limit int) ([]DrillRecord, error) {
	q := url.Values{}
	if pattern != "" {
		q.Set("pattern", pattern)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/api/v1/drills"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out DrillList
	err := c.do(ctx, http.MethodGet, path, nil, WriteOptions{}, &out)
	return out.Drills, err
}

// RecordDrill stores one drill result.
func (c *Client) RecordDrill(ctx context.Context, res result.Result) (DrillRecord, error) {
	var out DrillRecord
	err := c.do(ctx, http.MethodPost, "/api/v1/drills", res, WriteOptions{}, &out)
	return out, err
}
