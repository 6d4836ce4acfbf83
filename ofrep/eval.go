package ofrep

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/a8e2c47e/switchback/gateway"
)

// OpenFeature error codes and reasons (openfeature.dev/specification/types).
const (
	CodeParseError          = "PARSE_ERROR"
	CodeTargetingKeyMissing = "TARGETING_KEY_MISSING"
	CodeInvalidContext      = "INVALID_CONTEXT"
	CodeFlagNotFound        = "FLAG_NOT_FOUND"
	CodeGeneral             = "GENERAL"

	ReasonStatic   = "STATIC"
	ReasonSplit    = "SPLIT"
	ReasonDisabled = "DISABLED"
)

// contextWant is the shape every context error points to.
const contextWant = `want {"context": {"targetingKey": "<the subject's sticky id>"}}`

// request is an evaluation request; of the context only the targeting key
// and the deployment matter, every other attribute is accepted and ignored.
type request struct {
	Context *struct {
		TargetingKey json.RawMessage `json:"targetingKey"`
		Deployment   json.RawMessage `json:"deployment"`
	} `json:"context"`
}

// evalError is an evaluation that cannot be answered: the HTTP status and
// the OpenFeature error code, with details for the caller.
type evalError struct {
	status  int
	code    string
	details string
}

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// resolve reads the request and finds the subject and the view that
// answers it.
func (s *Server) resolve(r *http.Request, p Principal) (string, *view, *evalError) {
	buf := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, maxBody)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", nil, &evalError{http.StatusBadRequest, CodeParseError, "request body over " + strconv.FormatInt(mbe.Limit, 10) + " bytes; " + contextWant}
		}
		return "", nil, &evalError{http.StatusBadRequest, CodeParseError, "reading the request body: " + err.Error()}
	}
	var req request
	if err := json.Unmarshal(buf.Bytes(), &req); err != nil {
		return "", nil, &evalError{http.StatusBadRequest, CodeParseError, "request body is not valid JSON (" + err.Error() + "); " + contextWant}
	}
	if req.Context == nil {
		return "", nil, &evalError{http.StatusBadRequest, CodeTargetingKeyMissing, "no context; " + contextWant}
	}
	subject, present, err := stringField(req.Context.TargetingKey)
	switch {
	case err != nil:
		return "", nil, &evalError{http.StatusBadRequest, CodeInvalidContext, "context.targetingKey: " + string(req.Context.TargetingKey) + ": want a string, the subject's sticky id"}
	case !present || subject == "":
		return "", nil, &evalError{http.StatusBadRequest, CodeTargetingKeyMissing, "context.targetingKey is missing or empty: it is the subject, the same id the gateway's sticky setting reads (for example the X-User-ID value)"}
	}
	name, _, err := stringField(req.Context.Deployment)
	if err != nil {
		return "", nil, &evalError{http.StatusBadRequest, CodeInvalidContext, "context.deployment: " + string(req.Context.Deployment) + ": want a string, a deployment's name"}
	}
	v, e := s.pick(name, p)
	return subject, v, e
}

// pick chooses the deployment: the context's, else the token's default,
// else the only one served.
func (s *Server) pick(name string, p Principal) (*view, *evalError) {
	from := "context.deployment"
	if name == "" && p.Deployment != "" {
		name, from = p.Deployment, "the default deployment of token "+p.Name
	}
	if name == "" {
		names := s.src.Deployments()
		switch len(names) {
		case 0:
			return nil, &evalError{http.StatusInternalServerError, CodeGeneral, "no deployment is served yet"}
		case 1:
			name = names[0]
		default:
			sort.Strings(names)
			return nil, &evalError{http.StatusBadRequest, CodeInvalidContext, "several deployments are served (" + strings.Join(names, ", ") +
				"): name one in context.deployment, or give the token a default deployment"}
		}
	}
	snap, ok := s.src.Snapshot(name)
	if !ok {
		names := s.src.Deployments()
		sort.Strings(names)
		return nil, &evalError{http.StatusBadRequest, CodeInvalidContext, from + ": " + strconv.Quote(name) + ": not served here; served: " + strings.Join(names, ", ")}
	}
	return s.viewOf(snap), nil
}

// stringField decodes an optional JSON string.
func stringField(raw json.RawMessage) (v string, present bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	err = json.Unmarshal(raw, &v)
	return v, true, err
}

// single answers POST /ofrep/v1/evaluate/flags/{key}.
func (s *Server) single(w http.ResponseWriter, r *http.Request, p Principal) {
	key := strings.TrimPrefix(r.URL.Path, PathEvaluate+"/")
	subject, v, e := s.resolve(r, p)
	if e != nil {
		s.metrics.request(endpointSingle, e.code)
		writeFailure(w, e.status, key, e.code, e.details)
		return
	}
	i := v.flagIndex(key)
	if i < 0 {
		s.metrics.request(endpointSingle, CodeFlagNotFound)
		writeFailure(w, http.StatusNotFound, key, CodeFlagNotFound, "flag "+strconv.Quote(key)+" is not a flag of deployment "+v.snap.Name()+
			" (version "+uitoa(v.snap.Version())+"); its flags: "+strings.Join(v.names, ", "))
		return
	}
	d := v.snap.Decide(subject)
	buf := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(buf)
	buf.Reset()
	v.appendFlag(buf, i, d)
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	_, _ = w.Write(buf.Bytes())
	s.metrics.request(endpointSingle, outcomeOK)
}

var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
)

// bulk answers POST /ofrep/v1/evaluate/flags: every flag of the deployment.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request, p Principal) {
	subject, v, e := s.resolve(r, p)
	if e != nil {
		s.metrics.request(endpointBulk, e.code)
		writeBulkFailure(w, e.status, e.code, e.details)
		return
	}
	d := v.snap.Decide(subject)
	buf := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(buf)
	buf.Reset()
	buf.WriteString(`{"flags":[`)
	for i := range v.names {
		if i > 0 {
			buf.WriteByte(',')
		}
		v.appendFlag(buf, i, d)
	}
	buf.WriteString(`],"metadata":`)
	buf.WriteString(v.setMeta)
	buf.WriteString(`,"eventStreams":[{"type":"sse","endpoint":{"requestUri":`)
	buf.WriteString(strconv.Quote(s.streamURI(v.snap.Name(), p)))
	buf.WriteByte('}')
	if s.inactive > 0 {
		buf.WriteString(`,"inactivityDelaySec":`)
		buf.WriteString(strconv.Itoa(s.inactive))
	}
	buf.WriteString(`}]}`)

	// The tag covers the whole answer for this context, so it changes
	// exactly when a refetch would read something new.
	var tag [18]byte
	tag[0], tag[17] = '"', '"'
	sum := xxhash.Sum64(buf.Bytes())
	const digits = "0123456789abcdef"
	for i := 0; i < 16; i++ {
		tag[16-i] = digits[sum&0xf]
		sum >>= 4
	}
	h := w.Header()
	h["Etag"] = []string{string(tag[:])}
	h["Cache-Control"] = noStore
	if noneMatch(r.Header.Get("If-None-Match"), tag[:]) {
		w.WriteHeader(http.StatusNotModified)
		s.metrics.request(endpointBulk, outcomeNotModified)
		return
	}
	h["Content-Type"] = jsonType
	_, _ = w.Write(buf.Bytes())
	s.metrics.request(endpointBulk, outcomeOK)
}

// noneMatch reports whether an If-None-Match list names tag (weak
// comparison, as RFC 9110 asks for If-None-Match) or is "*".
func noneMatch(header string, tag []byte) bool {
	for header != "" {
		var t string
		t, header, _ = strings.Cut(header, ",")
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == string(tag) {
			return true
		}
	}
	return false
}

// streamURI is the event-stream address for a deployment; with tokens it
// carries the token's name and a signature, since EventSource cannot send
// an Authorization header.
func (s *Server) streamURI(deployment string, p Principal) string {
	q := url.Values{"deployment": {deployment}}
	if s.tokens != nil {
		q.Set("token", p.Name)
		q.Set("sig", s.sign(p.Name, deployment))
	}
	return PathEvents + "?" + q.Encode()
}

// appendFlag writes flag i's evaluation for decision d.
func (v *view) appendFlag(buf *bytes.Buffer, i int, d gateway.Decision) {
	on := d.Flags&(1<<i) != 0
	bp := v.snap.FlagPercent(i)
	reason := ReasonSplit
	switch {
	case v.killed&(1<<i) != 0:
		reason = ReasonDisabled
	case bp == 0 || bp == gateway.Buckets:
		reason = ReasonStatic
	}
	buf.WriteString(`{"key":`)
	buf.WriteString(v.key[i])
	if on {
		buf.WriteString(`,"value":true,"reason":"`)
	} else {
		buf.WriteString(`,"value":false,"reason":"`)
	}
	buf.WriteString(reason)
	if on {
		buf.WriteString(`","variant":"on","metadata":`)
	} else {
		buf.WriteString(`","variant":"off","metadata":`)
	}
	buf.WriteString(v.meta[i])
	buf.WriteByte('}')
}

// failure is the evaluationFailure and flagNotFound shape; bulk failures
// leave out the key.
type failure struct {
	Key          *string `json:"key,omitempty"`
	ErrorCode    string  `json:"errorCode,omitempty"`
	ErrorDetails string  `json:"errorDetails"`
}

func writeFailure(w http.ResponseWriter, status int, key, code, details string) {
	if code == CodeGeneral {
		writeGeneral(w, status, details)
		return
	}
	writeJSON(w, status, failure{Key: &key, ErrorCode: code, ErrorDetails: details})
}

func writeBulkFailure(w http.ResponseWriter, status int, code, details string) {
	if code == CodeGeneral {
		writeGeneral(w, status, details)
		return
	}
	writeJSON(w, status, failure{ErrorCode: code, ErrorDetails: details})
}

// writeGeneral is the generalErrorResponse: details only.
func writeGeneral(w http.ResponseWriter, status int, details string) {
	writeJSON(w, status, failure{ErrorDetails: details})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header()["Content-Type"] = jsonType
	w.Header()["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
