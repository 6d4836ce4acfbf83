package configstore

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors of the store. Each typed error below matches its sentinel with
// errors.Is; callers that need the details use errors.As. Validation errors
// are the *gateway.FieldError naming the field, the value and what is
// accepted.
var (
	// ErrNotFound is an unknown deployment, version (or a version retention
	// has dropped) or record; the error is a *NotFoundError.
	ErrNotFound = errors.New("configstore: not found")
	// ErrConflict is a write conditional on a version (If-Match) or a
	// record revision that is no longer current; the error is a
	// *ConflictError.
	ErrConflict = errors.New("configstore: version conflict")
	// ErrUnavailable is etcd not answering in time, or a write without
	// If-Match that kept losing to other writers until its deadline; the
	// cause is wrapped. Retrying later may succeed.
	ErrUnavailable = errors.New("configstore: store unavailable")
	// ErrNotLeader is a fenced write (Fence) by a leader that has lost its
	// leadership: another instance may be leading, so this one must stop.
	ErrNotLeader = errors.New("configstore: not the leader")
)

// NotFoundError says what is missing.
type NotFoundError struct {
	// Deployment names the deployment, service or change set.
	Deployment string
	// Kind is "service" or "change set" when Deployment names one; empty
	// for a deployment.
	Kind string
	// What is missing of the deployment, like "version 7", "a version
	// before 1" or "rollouts record"; empty when the deployment itself is.
	What string
}

func (e *NotFoundError) Error() string {
	kind := e.Kind
	if kind == "" {
		kind = "deployment"
	}
	if e.What == "" {
		return fmt.Sprintf("%s %q not found", kind, e.Deployment)
	}
	return fmt.Sprintf("%s %q has no %s", kind, e.Deployment, e.What)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ConflictError is a write refused because what it was conditional on has
// changed.
type ConflictError struct {
	Deployment string
	// Kind is the record kind (PutRecord) whose revision changed; empty
	// for a deployment's document.
	Kind string
	// Service is true when Deployment names a service.
	Service bool
	// Want is the version the write was conditional on, Current the one
	// the store holds (documents only).
	Want, Current uint64
}

func (e *ConflictError) Error() string {
	if e.Kind != "" {
		return fmt.Sprintf("the %s record of deployment %q changed meanwhile", e.Kind, e.Deployment)
	}
	what := "deployment"
	if e.Service {
		what = "service"
	}
	return fmt.Sprintf("%s %q is at version %s, not %s", what, e.Deployment,
		strconv.FormatUint(e.Current, 10), strconv.FormatUint(e.Want, 10))
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
