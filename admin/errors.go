package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

// apiError is an answer other than success: a status, a message for the
// operator and, when one input is to blame, its field.
type apiError struct {
	status int
	msg    string
	field  string
	// retryAfter, in seconds, is sent as Retry-After when not 0.
	retryAfter int
}

// unavailableRetry is the Retry-After of a 503: the store's outages and
// contention are usually over within a second or two.
const unavailableRetry = 1

func (e *apiError) Error() string { return e.msg }

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// classify maps an error from parsing or from the store to its answer,
// with errors.As on the store's typed errors. An error it does not
// recognise is a 500.
func classify(err error) *apiError {
	var (
		ae  *apiError
		fe  *gateway.FieldError
		ce  *configstore.ConflictError
		nf  *configstore.NotFoundError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		return &apiError{status: http.StatusBadRequest, msg: fe.Error(), field: fe.Field}
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body over %d bytes", mbe.Limit)}
	case errors.As(err, &nf):
		field := "name"
		if nf.What != "" {
			field = ""
		}
		return &apiError{status: http.StatusNotFound, msg: nf.Error(), field: field}
	case errors.As(err, &ce):
		if ce.Kind != "" {
			return &apiError{status: http.StatusConflict, msg: ce.Error() + "; read it again and retry"}
		}
		return &apiError{status: http.StatusConflict, msg: ce.Error() + "; read the deployment again and retry", field: "If-Match"}
	case errors.Is(err, configstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, msg: err.Error(), retryAfter: unavailableRetry}
	}
	return &apiError{status: http.StatusInternalServerError, msg: "internal error: " + err.Error()}
}

// notFoundField answers a *configstore.NotFoundError about part of a
// deployment (a version) with field, such as "version" or "from"; a
// missing deployment stays "name", and every other error is left alone.
func notFoundField(err error, field string) error {
	var nf *configstore.NotFoundError
	if errors.As(err, &nf) && nf.What != "" {
		return &apiError{status: http.StatusNotFound, msg: nf.Error(), field: field}
	}
	return err
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, errorBody{Error: e.msg, Field: e.field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The status is out; an encoding error can only be a broken connection.
	_ = json.NewEncoder(w).Encode(v)
}

// checkJSONBody refuses a mutation whose body is not JSON: together with
// the cross-origin check this keeps browsers' "simple" form posts out. A
// DELETE may come without a body.
func checkJSONBody(r *http.Request) *apiError {
	if r.Method == http.MethodDelete && (r.Body == nil || r.Body == http.NoBody) {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		got := ct
		if got == "" {
			got = "none"
		}
		return &apiError{status: http.StatusUnsupportedMediaType, field: "Content-Type",
			msg: fmt.Sprintf("Content-Type %s: a %s needs Content-Type: application/json", got, r.Method)}
	}
	return nil
}
