package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/release"
)

// Schemas is what releases need of the databases the gateway knows
// (`database NAME DSN` global option). Another package (databases)
// implements it.
type Schemas interface {
	Names() []string
	Version(ctx context.Context, db string) (int64, error)
}

// SchemaError is a configured database whose migration version could not
// be read: the DSN fails, the database is down. Nothing was written.
type SchemaError struct {
	Database string
	Err      error
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("database %q: reading its migration version: %v", e.Database, e.Err)
}

func (e *SchemaError) Unwrap() error { return e.Err }

// ReleaseStateError is an action the release's status does not allow,
// such as finishing a release that is not open.
type ReleaseStateError struct {
	Action  string
	Release release.Release
}

func (e *ReleaseStateError) Error() string {
	r := e.Release
	return fmt.Sprintf("release %s (%s) of %s is %s; only an open release can be %s", r.ID, r.Name, r.Deployment, r.Status, e.Action)
}

// ReleaseRequest is what opens a release.
type ReleaseRequest struct {
	Name string
	// Pool is the pool the release ships to; Label (its code version) and
	// Upstreams are what it runs there. Left empty, they are taken from
	// the pool when the release finishes.
	Pool      string
	Label     string
	Upstreams []string
	// Databases is the schema the release's code needs, by configured
	// database name.
	Databases map[string]release.SchemaNeed
	// Source stamps the versions ApplyRelease writes; default api.
	Source configstore.Source
}

// ReleaseApply is what a one-step release changes, each part as its own
// version, in the order a rollback undoes them backwards: the pool's code,
// the services' configuration, traffic, flags.
type ReleaseApply struct {
	// PoolUpstreams puts the release's upstreams and label on its pool.
	PoolUpstreams bool
	// Force replaces the pool even when it is the retained rollback
	// target.
	Force bool
	// Changes are applied as one change set.
	Changes []configstore.ChangeSpec
	// Weights replace the deployment's weights.
	Weights map[string]float64
	// Flags set flag percentages, creating flags that do not exist.
	Flags map[string]float64
}

func (a ReleaseApply) empty() bool {
	return !a.PoolUpstreams && len(a.Changes) == 0 && len(a.Weights) == 0 && len(a.Flags) == 0
}

// Release event kinds.
const (
	EventReleaseStarted  = "release_started"
	EventReleaseFinished = "release_finished"
)

// StartRelease validates req against the deployment and the configured
// databases, captures the state before the release (the deployment's
// document, every service's version, every database's migration
// version) and stores the release, open: versions written from now on
// belong to it. A deployment has one open release at a time. Rejections
// are *gateway.FieldError naming the field, *configstore.NotFoundError (the
// deployment) and *SchemaError; none writes anything.
func (c *Control) StartRelease(ctx context.Context, op Op, req ReleaseRequest) (release.Release, error) {
	r, _, err := c.prepareRelease(ctx, op, req)
	if err != nil {
		return release.Release{}, err
	}
	r, _, err = c.store.CreateRelease(ctx, r)
	if err != nil {
		return release.Release{}, err
	}
	c.recordRelease(ctx, EventReleaseStarted, r, r.Before.DeploymentVersion, "started by "+op.Author, r.Reason)
	return r, nil
}

// prepareRelease checks a request and builds the release it opens, with
// its Before state, and the deployment's current document.
func (c *Control) prepareRelease(ctx context.Context, op Op, req ReleaseRequest) (release.Release, configstore.Document, error) {
	for _, f := range []struct{ field, value string }{{"deployment", op.Deployment}, {"name", req.Name}, {"pool", req.Pool}} {
		if err := gateway.CheckName(f.field, f.value); err != nil {
			return release.Release{}, configstore.Document{}, err
		}
	}
	if strings.TrimSpace(op.Author) == "" {
		return release.Release{}, configstore.Document{}, &gateway.FieldError{Field: "author", Want: "say who makes the release (a user, a CI job)"}
	}
	doc, err := c.store.Get(ctx, op.Deployment)
	if err != nil {
		return release.Release{}, configstore.Document{}, err
	}
	if op.IfVersion != 0 && doc.Meta.Version != op.IfVersion {
		return release.Release{}, configstore.Document{}, &configstore.ConflictError{Deployment: op.Deployment, Want: op.IfVersion, Current: doc.Meta.Version}
	}
	if _, ok := doc.Config.Pools[req.Pool]; !ok {
		return release.Release{}, configstore.Document{}, &gateway.FieldError{Field: "pool", Value: strconv.Quote(req.Pool),
			Want: "a pool of deployment " + op.Deployment + ": " + strings.Join(slices.Sorted(maps.Keys(doc.Config.Pools)), ", ")}
	}
	if len(req.Upstreams) > 0 {
		// The upstreams must be ones the pool could run: checked as the
		// document they would make.
		cfg := doc.Config.Clone()
		cfg.Pools[req.Pool] = gateway.Pool{Upstreams: req.Upstreams, Release: req.Label}
		if err := cfg.Validate(); err != nil {
			return release.Release{}, configstore.Document{}, renameField(err, "pools."+req.Pool+".upstreams", "upstreams")
		}
	}
	if err := c.checkDatabases(req.Databases); err != nil {
		return release.Release{}, configstore.Document{}, err
	}
	// A clear answer before capturing anything; CreateRelease checks again
	// in its transaction.
	if open, err := c.openRelease(ctx, op.Deployment); err != nil {
		return release.Release{}, configstore.Document{}, err
	} else if open != nil {
		return release.Release{}, configstore.Document{}, &gateway.FieldError{Field: "deployment", Value: strconv.Quote(op.Deployment),
			Want: "one open release per deployment; release " + open.ID + " (" + open.Name + ") is open: finish it first"}
	}
	before, err := c.captureState(ctx, doc)
	if err != nil {
		return release.Release{}, configstore.Document{}, err
	}
	r := release.Release{
		Name: req.Name, Deployment: op.Deployment, Pool: req.Pool, Label: req.Label,
		Upstreams: slices.Clone(req.Upstreams), Databases: maps.Clone(req.Databases),
		Status: release.Open, Author: op.Author, Reason: op.Reason, Before: before,
	}
	return r, doc, nil
}

// renameField gives a *gateway.FieldError about field the name the caller
// used; other errors pass unchanged.
func renameField(err error, from, to string) error {
	var fe *gateway.FieldError
	if errors.As(err, &fe) && strings.HasPrefix(fe.Field, from) {
		c := *fe
		c.Field = to + strings.TrimPrefix(fe.Field, from)
		return &c
	}
	return err
}

func (c *Control) databaseNames() []string {
	if c.schemas == nil {
		return nil
	}
	names := slices.Clone(c.schemas.Names())
	slices.Sort(names)
	return names
}

// checkDatabases refuses a schema need for a database the gateway does
// not know: nothing could check it.
func (c *Control) checkDatabases(needs map[string]release.SchemaNeed) error {
	known := c.databaseNames()
	for _, db := range slices.Sorted(maps.Keys(needs)) {
		need, field := needs[db], "databases."+db
		if slices.Contains(known, db) {
			if need.Version < 0 {
				return &gateway.FieldError{Field: field + ".version", Value: strconv.FormatInt(need.Version, 10), Want: "want a migration version, 0 or more"}
			}
			if need.MinVersion < 0 || need.MinVersion > need.Version {
				return &gateway.FieldError{Field: field + ".min_version", Value: strconv.FormatInt(need.MinVersion, 10),
					Want: "want 0 to the version the release needs, " + strconv.FormatInt(need.Version, 10)}
			}
			continue
		}
		want := "a database configured with `database NAME DSN` in the switchback global option; none is configured"
		if len(known) > 0 {
			want = "a configured database: " + strings.Join(known, ", ")
		}
		return &gateway.FieldError{Field: field, Value: strconv.Quote(db), Want: want}
	}
	return nil
}

// openRelease returns the deployment's open release, or nil.
func (c *Control) openRelease(ctx context.Context, deployment string) (*release.Release, error) {
	list, err := c.store.ListReleases(ctx, deployment)
	if err != nil {
		return nil, err
	}
	for _, r := range list {
		if r.Status == release.Open {
			return &r, nil
		}
	}
	return nil, nil
}

// captureState is the state a release can change, as of doc and now.
func (c *Control) captureState(ctx context.Context, doc configstore.Document) (release.State, error) {
	cfg := doc.Config
	st := release.State{
		DeploymentVersion: doc.Meta.Version,
		Weights:           maps.Clone(cfg.Weights),
		Pools:             make(map[string]release.PoolState, len(cfg.Pools)),
		At:                c.now().UTC(),
	}
	if st.Weights == nil {
		st.Weights = map[string]float64{}
	}
	if len(cfg.Flags) > 0 {
		st.Flags = make(map[string]float64, len(cfg.Flags))
		for name, f := range cfg.Flags {
			st.Flags[name] = f.Percent
		}
	}
	for name, p := range cfg.Pools {
		st.Pools[name] = release.PoolState{Upstreams: slices.Clone(p.Upstreams), Label: p.Release}
	}
	svcs, err := c.store.ListServices(ctx)
	if err != nil {
		return release.State{}, err
	}
	if len(svcs) > 0 {
		st.Services = make(map[string]uint64, len(svcs))
		for _, d := range svcs {
			st.Services[d.Name] = d.Meta.Version
		}
	}
	for _, db := range c.databaseNames() {
		v, err := c.schemas.Version(ctx, db)
		if err != nil {
			return release.State{}, &SchemaError{Database: db, Err: err}
		}
		if st.Databases == nil {
			st.Databases = map[string]int64{}
		}
		st.Databases[db] = v
	}
	return st, nil
}

// FinishRelease records the state after an open release (found by id or
// name): the deployment, services and databases now, and the change sets
// applied while it was open. Its pool's upstreams and label become the
// release's when the release did not name them. op.Deployment, when set,
// must be the release's. A release that is not open is a
// *ReleaseStateError.
func (c *Control) FinishRelease(ctx context.Context, op Op, idOrName string) (release.Release, error) {
	for attempt := 1; ; attempt++ {
		r, rev, err := c.store.FindRelease(ctx, idOrName)
		if err != nil {
			return release.Release{}, err
		}
		if op.Deployment != "" && op.Deployment != r.Deployment {
			return release.Release{}, &gateway.FieldError{Field: "deployment", Value: strconv.Quote(op.Deployment),
				Want: "the release's deployment, " + strconv.Quote(r.Deployment)}
		}
		if r.Status != release.Open {
			return release.Release{}, &ReleaseStateError{Action: "finished", Release: r}
		}
		doc, err := c.store.Get(ctx, r.Deployment)
		if err != nil {
			return release.Release{}, err
		}
		after, err := c.captureState(ctx, doc)
		if err != nil {
			return release.Release{}, err
		}
		if after.ChangeSets, err = c.changeSetsSince(ctx, r.Started); err != nil {
			return release.Release{}, err
		}
		if p, ok := after.Pools[r.Pool]; ok {
			if len(r.Upstreams) == 0 {
				r.Upstreams = slices.Clone(p.Upstreams)
			}
			if r.Label == "" {
				r.Label = p.Label
			}
		}
		r.After, r.Status, r.Finished = &after, release.Finished, after.At
		if _, err := c.store.PutRelease(ctx, r, rev); err != nil {
			if errors.Is(err, configstore.ErrConflict) && attempt < maxAttempts {
				continue
			}
			return release.Release{}, err
		}
		c.recordRelease(ctx, EventReleaseFinished, r, after.DeploymentVersion, "finished by "+op.Author, op.Reason)
		return r, nil
	}
}

// changeSetsSince lists the ids of the change sets applied from since on,
// oldest first.
func (c *Control) changeSetsSince(ctx context.Context, since time.Time) ([]string, error) {
	list, err := c.store.ListChangeSets(ctx, 0)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, cs := range slices.Backward(list) {
		if cs.Time.Before(since) {
			continue
		}
		ids = append(ids, cs.ID)
	}
	return ids, nil
}

// ApplyRelease makes a whole release in one call, for CI: it opens the
// release, writes each part of apply as its own version (the change set,
// then the pool's code, the weights, the flags) and finishes it. Apply is
// validated against the deployment before anything is written; a change
// set refused by a service's schema takes the just-opened release back,
// so bad input changes nothing. A write that fails after the first one
// leaves the release open, and the error names it.
func (c *Control) ApplyRelease(ctx context.Context, op Op, req ReleaseRequest, apply ReleaseApply) (release.Release, error) {
	if apply.empty() {
		return release.Release{}, &gateway.FieldError{Field: "apply", Value: "{}",
			Want: "at least one of pool_upstreams, changes, weights, flags; or no apply to open the release and finish it later"}
	}
	r, doc, err := c.prepareRelease(ctx, op, req)
	if err != nil {
		return release.Release{}, err
	}
	if apply.PoolUpstreams && len(req.Upstreams) == 0 {
		return release.Release{}, &gateway.FieldError{Field: "upstreams", Value: "[]", Want: "the upstreams to put on pool " + req.Pool + " (apply.pool_upstreams)"}
	}
	if err := c.checkApply(doc, req, apply); err != nil {
		return release.Release{}, err
	}
	r, rev, err := c.store.CreateRelease(ctx, r)
	if err != nil {
		return release.Release{}, err
	}

	source := req.Source
	if source == "" {
		source = configstore.SourceAPI
	}
	meta := configstore.Meta{Author: op.Author, Reason: withWhy("release "+r.Name, op.Reason), Source: source}
	if len(apply.Changes) > 0 {
		if _, err := c.store.ApplyChangeSet(ctx, apply.Changes, meta); err != nil {
			// Nothing but the record was written: take it back.
			if derr := c.store.DeleteRelease(context.WithoutCancel(ctx), r.ID, rev); derr != nil {
				return release.Release{}, fmt.Errorf("%w (release %s stays open with nothing applied: %v)", prefixField(err, "apply"), r.ID, derr)
			}
			return release.Release{}, prefixField(err, "apply")
		}
	}
	// Recorded once the release is sure to stay.
	c.recordRelease(ctx, EventReleaseStarted, r, r.Before.DeploymentVersion, "started by "+op.Author, r.Reason)
	for _, w := range c.applyWrites(req, apply) {
		res, err := c.store.Edit(ctx, r.Deployment, 0, meta, w.edit)
		if err != nil {
			return release.Release{}, fmt.Errorf("release %s is open with part of its changes written: %s failed: %w; finish it or roll it back", r.ID, w.what, err)
		}
		if res.Wrote {
			c.wrote(res.Doc)
		}
	}
	return c.FinishRelease(ctx, Op{Deployment: r.Deployment, Author: op.Author, Reason: op.Reason}, r.ID)
}

type deploymentWrite struct {
	what string
	edit func(cur configstore.Document, next *gateway.Config) error
}

// applyWrites are the deployment versions a one-step release writes, in
// order.
func (c *Control) applyWrites(req ReleaseRequest, apply ReleaseApply) []deploymentWrite {
	var out []deploymentWrite
	if apply.PoolUpstreams {
		out = append(out, deploymentWrite{"pool " + req.Pool, func(cur configstore.Document, next *gateway.Config) error {
			if until, ok := cur.RetainedUntil(req.Pool, c.now()); ok && !apply.Force {
				return retainedError(req.Pool, until)
			}
			next.Pools[req.Pool] = gateway.Pool{Upstreams: slices.Clone(req.Upstreams), Release: req.Label}
			return nil
		}})
	}
	if len(apply.Weights) > 0 {
		out = append(out, deploymentWrite{"weights", func(_ configstore.Document, next *gateway.Config) error {
			next.Weights = maps.Clone(apply.Weights)
			if err := next.Validate(); err != nil {
				return err // an unknown pool or a wrong sum says more than a missing one
			}
			return gateway.CheckWeightsCover(apply.Weights, next.Pools)
		}})
	}
	if len(apply.Flags) > 0 {
		out = append(out, deploymentWrite{"flags", func(_ configstore.Document, next *gateway.Config) error {
			if next.Flags == nil {
				next.Flags = map[string]gateway.Flag{}
			}
			for name, p := range apply.Flags {
				next.Flags[name] = gateway.Flag{Percent: p}
			}
			return nil
		}})
	}
	return out
}

func retainedError(pool string, until time.Time) error {
	return &gateway.FieldError{Field: "pool", Value: strconv.Quote(pool),
		Want: "a pool that is not the retained rollback target (until " + until.UTC().Format(time.RFC3339) +
			"); replacing it removes the way back: wait, or set apply.force"}
}

// checkApply runs apply's deployment writes on a copy of the current
// document, so a bad weight or flag is refused before anything is
// written. The change set is checked where it is applied, in its own
// transaction.
func (c *Control) checkApply(doc configstore.Document, req ReleaseRequest, apply ReleaseApply) error {
	cfg := doc.Config.Clone()
	for _, w := range c.applyWrites(req, apply) {
		if err := w.edit(doc, &cfg); err != nil {
			return prefixField(err, "apply")
		}
	}
	if err := cfg.Validate(); err != nil {
		return prefixField(err, "apply")
	}
	return nil
}

// prefixField puts prefix in front of a *gateway.FieldError's field.
func prefixField(err error, prefix string) error {
	var fe *gateway.FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Field = prefix + "." + fe.Field
		return &c
	}
	return err
}

func (c *Control) recordRelease(ctx context.Context, kind string, r release.Release, version uint64, what, reason string) {
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: kind, Subject: "release:" + r.ID, Version: version,
		Reason: withWhy(fmt.Sprintf("release %s (%s) of pool %s %s", r.ID, r.Name, r.Pool, what), reason)})
}
