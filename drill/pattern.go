package drill

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/drill/result"
)

// Trigger and Result are the result package's, so patterns and callers
// need one import.
type (
	Trigger    = result.Trigger
	Result     = result.Result
	Step       = result.Step
	Difference = result.Difference
)

// Triggers.
const (
	Manual = result.Manual
	Guard  = result.Guard
)

// Pattern is one rollback path. The runner calls Prepare, Capture, Break,
// (manual: Rollback's commands), Probe until recovered, Capture again and
// Cleanup, in that order, from one goroutine except Probe. One pattern
// value may be drilled several times (once per trigger): Prepare starts
// afresh.
type Pattern interface {
	// Name is the pattern's name on the command line: flip, flag, config,
	// migration, release.
	Name() string
	// Applicable returns nil when the pattern can be drilled with t
	// against env, or an error saying why not ("no guard watches service
	// configuration"); the drill is then reported as not applicable.
	Applicable(ctx context.Context, env *Env, t Trigger) error
	// Prepare brings the target to the drill's starting state and returns
	// when clients see it.
	Prepare(ctx context.Context, env *Env) error
	// Capture returns the state a rollback must restore.
	Capture(ctx context.Context, env *Env) (State, error)
	// Break injects the fault. For a manual trigger the runner then waits
	// until Probe sees it (an answer that is not Good).
	Break(ctx context.Context, env *Env, t Trigger) error
	// Rollback is the documented rollback: the commands an on-call
	// engineer runs, as the runbook prints them.
	Rollback(env *Env) []Command
	// Probe makes one observation from the client's side: a request
	// through the gateway, a watcher's version, a database check.
	Probe(ctx context.Context, env *Env) Answer
	// Cleanup removes the fault and what Prepare added. It runs even when
	// an earlier step failed.
	Cleanup(ctx context.Context, env *Env) error
}

// Guarded is implemented by patterns the gateway's guard watches.
type Guarded interface {
	// GuardSubject is the guard's subject for the fault: "pool:green" or
	// "flag:new_payment_flow"; the runner reads the guard's view and
	// events for it to time detection and decision.
	GuardSubject(env *Env) string
}

// Stepped is implemented by patterns whose rollback command only starts
// steps that the gateway then runs (a release rollback, carried out by the
// elected instance): once clients recovered, the runner adds the steps as
// the gateway timed them to the result, after the command's own.
type Stepped interface {
	// RollbackSteps returns the rollback's steps, StartMS counted from
	// start, the drill's start.
	RollbackSteps(ctx context.Context, env *Env, start time.Time) ([]Step, error)
}

// Answer is one observation by Probe.
type Answer struct {
	// Good: a good answer from the previous (pre-change) state.
	Good bool
	// Failed: the request failed (transport error, 5xx). An answer can be
	// neither Good nor Failed: a good answer from the state the rollback
	// must leave.
	Failed bool
	// Detail says what was seen, for the report when recovery never came.
	Detail string
}

// Command is one documented rollback command. It has runbook.Command's
// shape: runbook.Rollback's result converts with Commands.
type Command struct {
	// Args are the switchback command's arguments, without the program
	// name: {"flip", "checkout", "--reason", "drill"}.
	Args []string
	// Curl is the same change with curl.
	Curl string
	// Explain says what the command does and why it is the rollback.
	Explain string
}

// State is what a rollback must restore, as named canonical text parts:
// "deployment" → the document's content as indented JSON.
type State map[string]string

// CLI runs one switchback command line as an engineer would.
type CLI interface {
	// Run runs switchback with args and returns its combined output; a
	// non-zero exit is an error.
	Run(ctx context.Context, args []string) (string, error)
}

// Env is the target a drill runs against.
type Env struct {
	// Target is "sandbox" or the admin API's URL, for the result.
	Target string
	// Admin is the admin API; AdminURL and Token its address and token.
	Admin    *admin.Client
	AdminURL string
	Token    string
	// Deployment is the deployment drilled; Traffic the base URL clients
	// reach it at (the gateway's site).
	Deployment string
	Traffic    string
	// Database is the migration pattern's database (a URL migrate
	// accepts); empty when there is none.
	Database string
	// ReleaseDatabase is the release pattern's database: the name of a
	// `database NAME DSN { migrations DIR }` line of the gateway, whose
	// directory holds the drill's release migrations. Caddyfile is that
	// gateway's configuration, which `switchback migrate --database NAME
	// --config FILE` reads, and ReleaseDatabaseURL the database's address
	// (read only, for the schema dump). Empty when there is none.
	ReleaseDatabase    string
	ReleaseDatabaseURL string
	Caddyfile          string
	// releaseProblem says why ReleaseDatabase cannot be used (its
	// address could not be read from Caddyfile).
	releaseProblem string
	// Service is the service whose configuration the config pattern
	// drills; Watchers are the configuration's watchers (configclient),
	// each reporting the version it has.
	Service  string
	Watchers []Watcher
	// Faults maps a pool to the fault-injection URLs of its upstreams
	// (the example backend's /_fault); nil means derive them from the
	// pool's upstreams.
	Faults map[string][]string
	// CLI runs the manual trigger's commands.
	CLI CLI
	// HTTP sends the probes.
	HTTP *http.Client
	// Rate is probes per second (default 100); the probes stop at
	// recovery or at the drill's deadline, so traffic is bounded.
	Rate int
	// Reason is recorded with every change the drill writes.
	Reason string
}

// Watcher is one receiver of a service's configuration.
type Watcher interface {
	// Current returns the version the watcher has applied and its
	// content; 0 before the first.
	Current() (version uint64, config []byte)
}

// ErrNotApplicable wraps the reasons Applicable returns.
var ErrNotApplicable = errors.New("not applicable")

// Commands converts runbook commands (or any value of the same shape).
func Commands[C ~struct {
	Args    []string
	Curl    string
	Explain string
}](cs []C) []Command {
	out := make([]Command, len(cs))
	for i, c := range cs {
		out[i] = Command(c)
	}
	return out
}
