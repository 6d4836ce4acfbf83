package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
)

// api is the admin API as one signed-in user sees it: an *admin.Client whose
// requests are served by the admin's handler in this process, carrying the
// user's token, address, Host and fetch headers.
type api struct {
	*admin.Client
	hc    *http.Client
	token string
}

func (c *Console) apiFor(r *http.Request, s *session) *api {
	cl, err := admin.NewClient("http://localhost", s.token)
	if err != nil {
		panic("console: " + err.Error()) // a constant URL
	}
	hc := &http.Client{Transport: inProcess{api: c.api, from: r}}
	cl.HTTP = hc
	return &api{Client: cl, hc: hc, token: s.token}
}

// events reads the events log newest first; the Client has no method for it.
func (a *api) events(ctx context.Context, deployment string, limit int) ([]configstore.Event, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if deployment != "" {
		q.Set("deployment", deployment)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost/api/v1/events?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &eb)
		return nil, &admin.APIError{Status: resp.StatusCode, Message: eb.Error}
	}
	var out struct {
		Events []configstore.Event `json:"events"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode events: %w", err)
	}
	return out.Events, nil
}

// inProcess serves a client request with the admin API's handler, as if the
// browser's request had asked it: same remote address (the loopback rule
// without tokens), Host (the allowlist) and fetch metadata (the
// cross-origin check), and the browser request's context, which carries the
// local address.
type inProcess struct {
	api  http.Handler
	from *http.Request
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.RemoteAddr = t.from.RemoteAddr
	in.Host = t.from.Host
	in.RequestURI = req.URL.RequestURI()
	in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/1.1", 1, 1
	in.TLS = t.from.TLS
	for _, h := range []string{"Origin", "Sec-Fetch-Site"} {
		if v := t.from.Header.Get(h); v != "" {
			in.Header.Set(h, v)
		}
	}
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	t.api.ServeHTTP(rec, in)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return &http.Response{
		Status:        strconv.Itoa(rec.code) + " " + http.StatusText(rec.code),
		StatusCode:    rec.code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rec.header,
		Body:          io.NopCloser(&rec.body),
		ContentLength: int64(rec.body.Len()),
		Request:       req,
	}, nil
}

// recorder is the ResponseWriter of an in-process API request.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}

// apiStatus is the HTTP status of an API error, or 500.
func apiStatus(err error) int {
	var ae *admin.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusInternalServerError
}

// apiMessage is what an API error says, for the page.
func apiMessage(err error) string {
	var ae *admin.APIError
	if errors.As(err, &ae) {
		if ae.Field != "" {
			return ae.Message + " (field " + ae.Field + ")"
		}
		return ae.Message
	}
	return err.Error()
}
