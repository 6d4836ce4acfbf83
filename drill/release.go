package drill

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/drill/result"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
	"github.com/a8e2c47e/switchback/runbook"
)

// releaseMigrationFiles are the release pattern's migrations: a table
// (version 1, applied by Prepare) and an expand migration (version 2,
// applied by the release).
//
//go:embed release_migrations/*.sql
var releaseMigrationFiles embed.FS

func releaseMigrations() fs.FS {
	sub, err := fs.Sub(releaseMigrationFiles, "release_migrations")
	if err != nil {
		panic("drill: embedded release migrations: " + err.Error()) // the directory is embedded above
	}
	return sub
}

// The release pattern's versions: Prepare migrates to base, the release
// to top, its rollback back to base.
const (
	releaseBase int64 = 1
	releaseTop  int64 = 2
)

// DrillReleaseFlag is the flag the release pattern's release raises.
const DrillReleaseFlag = "switchback_drill_release"

// ReleaseServices are the two services whose configuration the release
// pattern's release changes in one change set, for a deployment.
func ReleaseServices(deployment string) []string {
	return []string{"switchback-drill-" + deployment + "-api", "switchback-drill-" + deployment + "-worker"}
}

var (
	releaseGoodConfig = json.RawMessage(`{"drill": "release", "timeout_ms": 1000, "retries": 2}`)
	releaseChange     = json.RawMessage(`{"timeout_ms": 50, "retries": 0}`)
)

// releasePattern drills the full chain of a release: one release raises a
// flag, applies a change set to two services, flips all traffic to the
// new pool and runs an expand migration; the new pool's code then fails.
// The rollback is the runbook's one command, `switchback release rollback
// ID`, which the elected instance carries out step by step. Recovered:
// clients get only good answers from the previous pool, without the flag,
// and the release is rolled_back. The state: the deployment's content
// (weights, flags, pools), both services' configuration, the schema dump
// and the migration version the gateway reads.
//
// The release is made in Break, not Prepare: the state before is the one
// before the release, which is what its rollback must restore.
type releasePattern struct {
	prev, next string
	ups        deploymentPools
	orig       original
	guarded    bool
	services   []string

	mu sync.Mutex // guards id and done against Probe
	id string
	// done: the release was seen rolled_back, which is final.
	done bool
}

func (*releasePattern) Name() string { return "release" }

func (p *releasePattern) Applicable(ctx context.Context, env *Env, t Trigger) error {
	if t == Guard {
		return fmt.Errorf("%w: the guard moves traffic off a failing pool and turns a failing flag off, but does not roll back a release: "+
			"its configuration change set and its migration stay, and the release is not marked rolled back; "+
			"a release is rolled back by `switchback release rollback ID`", ErrNotApplicable)
	}
	if env.ReleaseDatabase == "" {
		return fmt.Errorf("%w: no database for the release's migration; give --database NAME, a `database NAME DSN { migrations DIR }` line of the gateway "+
			"whose directory holds the drill's migrations (drill/release_migrations), and --config, the gateway's Caddyfile", ErrNotApplicable)
	}
	if env.releaseProblem != "" {
		return fmt.Errorf("%w: %s", ErrNotApplicable, env.releaseProblem)
	}
	info, err := releaseDatabaseInfo(ctx, env)
	if err != nil {
		return err
	}
	switch {
	case info == nil:
		return fmt.Errorf("%w: database %s is not configured on the gateway at %s (GET /api/v1/databases); the release drill needs a "+
			"`database %s DSN { migrations DIR }` line in its switchback global option", ErrNotApplicable, env.ReleaseDatabase, env.AdminURL, env.ReleaseDatabase)
	case info.Migrations == "":
		return fmt.Errorf("%w: database %s has no migrations directory on the gateway; the release drill needs `database %s DSN { migrations DIR }` "+
			"with the drill's migrations (drill/release_migrations) in DIR", ErrNotApplicable, env.ReleaseDatabase, env.ReleaseDatabase)
	case env.Caddyfile == "" || env.ReleaseDatabaseURL == "":
		return fmt.Errorf("%w: the drill runs `switchback migrate --database %s --config FILE` and dumps the schema: give --config, the gateway's Caddyfile",
			ErrNotApplicable, env.ReleaseDatabase)
	}
	return nil
}

// releaseDatabaseInfo returns what the gateway says of the release
// pattern's database, or nil when it does not know it.
func releaseDatabaseInfo(ctx context.Context, env *Env) (*databaseInfo, error) {
	var list struct {
		Databases []databaseInfo `json:"databases"`
	}
	if err := env.Admin.Get(ctx, "/api/v1/databases", &list); err != nil {
		return nil, fmt.Errorf("release drill: list the gateway's databases: %w", err)
	}
	for _, d := range list.Databases {
		if d.Name == env.ReleaseDatabase {
			return &d, nil
		}
	}
	return nil, nil
}

// databaseInfo is the part of GET /api/v1/databases the drill reads.
type databaseInfo struct {
	Name       string `json:"name"`
	Migrations string `json:"migrations"`
	Version    int64  `json:"version"`
	Error      string `json:"error"`
}

func (p *releasePattern) migrate(ctx context.Context, env *Env, args ...string) error {
	cmd := append([]string{"migrate", "--database", env.ReleaseDatabase, "--config", env.Caddyfile}, args...)
	if out, err := env.CLI.Run(ctx, cmd); err != nil {
		return fmt.Errorf("switchback %s: %w\n%s", shellJoin(cmd), err, strings.TrimSpace(out))
	}
	return nil
}

func (p *releasePattern) Prepare(ctx context.Context, env *Env) error {
	p.mu.Lock()
	p.id, p.done = "", false
	p.mu.Unlock()
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return err
	}
	prev, next, err := pools(d)
	if err != nil {
		return err
	}
	if open, err := openRelease(ctx, env); err != nil {
		return err
	} else if open != "" {
		return fmt.Errorf("release drill: deployment %s has an open release %s; finish it (switchback release finish %s) before drilling", env.Deployment, open, open)
	}
	p.prev, p.next, p.orig, p.services = prev, next, remember(d), ReleaseServices(env.Deployment)
	if p.ups, err = healthyOn(ctx, env, d, prev, next, "before the release"); err != nil {
		return err
	}
	if f, ok := d.Flags[DrillReleaseFlag]; !ok || f.Percent != 0 {
		if _, err := env.Admin.SetFlag(ctx, env.Deployment, DrillReleaseFlag, 0, admin.WriteOptions{Reason: env.reason("the release drill's flag, off")}); err != nil {
			return err
		}
	}
	for _, svc := range p.services {
		cur, err := env.Admin.GetService(ctx, svc, 0)
		var ae *admin.APIError
		switch {
		case errors.As(err, &ae) && ae.Status == 404:
		case err != nil:
			return err
		case jsonEqual(cur.Config, releaseGoodConfig):
			continue
		}
		if _, err := env.Admin.PutService(ctx, svc, releaseGoodConfig, admin.WriteOptions{Reason: env.reason("the release drill's service")}); err != nil {
			return err
		}
	}
	info, err := releaseDatabaseInfo(ctx, env)
	if err != nil {
		return err
	}
	if info == nil || info.Error != "" {
		return fmt.Errorf("release drill: database %s cannot be read by the gateway: %+v", env.ReleaseDatabase, info)
	}
	if info.Version > releaseBase {
		return fmt.Errorf("release drill: database %s is at migration version %d; the drill needs a database of its own at version 0 or %d "+
			"(run switchback migrate --database %s --config %s down --to 0)", env.ReleaseDatabase, info.Version, releaseBase, env.ReleaseDatabase, env.Caddyfile)
	}
	if err := p.migrate(ctx, env, "up", "--to", strconv.FormatInt(releaseBase, 10)); err != nil {
		return fmt.Errorf("release drill: %w", err)
	}
	p.guarded = d.Guard != nil
	if p.guarded {
		return waitGuardQuiet(ctx, env, guardSubjects(p.ups, DrillReleaseFlag), 30*time.Second)
	}
	return nil
}

// openRelease returns the id of the deployment's open release, or "".
func openRelease(ctx context.Context, env *Env) (string, error) {
	rs, err := env.Admin.Releases(ctx, env.Deployment)
	if err != nil {
		return "", fmt.Errorf("release drill: list releases: %w", err)
	}
	for _, r := range rs {
		if r.Status == release.Open {
			return r.ID, nil
		}
	}
	return "", nil
}

func (p *releasePattern) Capture(ctx context.Context, env *Env) (State, error) {
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return nil, err
	}
	st := State{"deployment " + d.Name: content(d)}
	for _, svc := range p.services {
		s, err := env.Admin.GetService(ctx, svc, 0)
		if err != nil {
			return nil, err
		}
		st["service "+svc] = string(indent(s.Config))
	}
	info, err := releaseDatabaseInfo(ctx, env)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nil, fmt.Errorf("release drill: database %s is no longer configured on the gateway", env.ReleaseDatabase)
	}
	st["migration version of "+env.ReleaseDatabase] = fmt.Sprintf("version %d %s", info.Version, info.Error)
	// The migrations are not run, only needed to open: the drill's own do.
	m, err := migrate.Open(ctx, env.ReleaseDatabaseURL, releaseMigrations(), migrate.WithReadOnly())
	if err != nil {
		return nil, fmt.Errorf("release drill: %w", err)
	}
	defer m.Close()
	t, err := migrate.ParseTarget(env.ReleaseDatabaseURL)
	if err != nil {
		return nil, err
	}
	schema, err := migrate.DumpSchema(ctx, t.Dialect, m.DB())
	if err != nil {
		return nil, fmt.Errorf("release drill: %w", err)
	}
	st["schema of "+env.ReleaseDatabase] = schema.String()
	return st, nil
}

// Break makes the release as CI would (start, then each change as its own
// version while it is open, then finish) and then makes its code fail.
func (p *releasePattern) Break(ctx context.Context, env *Env, _ Trigger) error {
	wo := admin.WriteOptions{Reason: env.reason("the release")}
	rv, err := env.Admin.StartRelease(ctx, admin.ReleaseRequest{
		Name: fmt.Sprintf("drill-%d", time.Now().UnixMilli()), Deployment: env.Deployment, Pool: p.next,
		Databases: map[string]release.SchemaNeed{env.ReleaseDatabase: {Version: releaseTop, MinVersion: releaseBase}},
	}, wo)
	if err != nil {
		return fmt.Errorf("start the release: %w", err)
	}
	p.mu.Lock()
	p.id = rv.ID
	p.mu.Unlock()
	if _, err := env.Admin.SetFlag(ctx, env.Deployment, DrillReleaseFlag, 100, wo); err != nil {
		return fmt.Errorf("release %s: raise %s: %w", rv.ID, DrillReleaseFlag, err)
	}
	changes := make([]configstore.ChangeSpec, len(p.services))
	for i, svc := range p.services {
		changes[i] = configstore.ChangeSpec{Service: svc, Patch: releaseChange}
	}
	if _, err := env.Admin.ApplyChangeSet(ctx, changes, wo); err != nil {
		return fmt.Errorf("release %s: change set: %w", rv.ID, err)
	}
	w := map[string]float64{}
	for n := range p.ups {
		w[n] = 0
	}
	w[p.next] = 100
	if _, err := env.Admin.SetWeights(ctx, env.Deployment, w, wo); err != nil {
		return fmt.Errorf("release %s: flip to %s: %w", rv.ID, p.next, err)
	}
	if err := p.migrate(ctx, env, "up"); err != nil {
		return fmt.Errorf("release %s: %w", rv.ID, err)
	}
	if _, err := env.Admin.FinishRelease(ctx, rv.ID, wo); err != nil {
		return fmt.Errorf("finish release %s: %w", rv.ID, err)
	}
	return setFault(ctx, env, faultURLs(env, p.ups, p.next), map[string]any{"error_rate": 1})
}

func (p *releasePattern) releaseID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

func (p *releasePattern) Rollback(env *Env) []Command {
	return Commands(runbook.Rollback("release", runbook.Params{Admin: env.AdminURL, Release: p.releaseID(),
		Reason: env.reason("roll back the release")}))
}

// Probe: good when the answer is a good one from the previous pool
// without the release's flag, and the release is rolled back.
func (p *releasePattern) Probe(ctx context.Context, env *Env) Answer {
	a := request(ctx, env)
	good := !a.failed() && a.status < 400 && (a.pool == p.prev || a.pool == "") && !slices.Contains(a.flags, DrillReleaseFlag)
	detail := a.String()
	if good {
		status := p.status(ctx, env)
		detail += "; release " + status
		good = status == string(release.RolledBack)
	}
	return Answer{Good: good, Failed: a.failed(), Detail: detail}
}

// status reads the release's status; once rolled back, it stays so.
func (p *releasePattern) status(ctx context.Context, env *Env) string {
	p.mu.Lock()
	id, done := p.id, p.done
	p.mu.Unlock()
	if done {
		return string(release.RolledBack)
	}
	if id == "" {
		return "not started"
	}
	rv, err := env.Admin.Release(ctx, id)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if rv.Status == release.RolledBack {
		p.mu.Lock()
		p.done = true
		p.mu.Unlock()
	}
	s := string(rv.Status)
	if rv.Status == release.RollbackFailed && rv.Rollback != nil {
		for _, st := range rv.Rollback.Steps {
			if st.Status == release.StepFailed {
				s += ": step " + string(st.Kind) + ": " + st.Result
			}
		}
	}
	return s
}

func (p *releasePattern) GuardSubject(*Env) string { return "pool:" + p.next }

// RollbackSteps implements Stepped: the release rollback's steps as its
// record timed them, the elected instance having run them.
func (p *releasePattern) RollbackSteps(ctx context.Context, env *Env, start time.Time) ([]Step, error) {
	id := p.releaseID()
	if id == "" {
		return nil, nil
	}
	rv, err := env.Admin.Release(ctx, id)
	if err != nil {
		return nil, err
	}
	if rv.Rollback == nil {
		return nil, nil
	}
	return releaseSteps(rv.ID, rv.Rollback.Steps, start), nil
}

// releaseSteps turns a release rollback's steps into the drill's, timed
// from the drill's start.
func releaseSteps(id string, steps []release.Step, start time.Time) []Step {
	out := make([]Step, 0, len(steps))
	for _, s := range steps {
		st := result.Step{Name: "release " + id + " rollback step: " + string(s.Kind), Output: trimOutput(s.Plan)}
		if s.Result != "" {
			st.Output = trimOutput(s.Plan + "\n→ " + s.Result)
		}
		if !s.Started.IsZero() {
			st.StartMS = s.Started.Sub(start).Milliseconds()
			if !s.Finished.IsZero() {
				st.DurationMS = s.Finished.Sub(s.Started).Milliseconds()
			}
		}
		switch s.Status {
		case release.StepFailed:
			st.Error = s.Result
		case release.StepPending:
			st.Error = "not run: the rollback did not get to it"
		}
		out = append(out, st)
	}
	return out
}

// Cleanup clears the fault and puts back what the drill changed, whatever
// the rollback did: a release left open is finished (a deployment takes
// one open release at a time) and rolled back, then the deployment, the
// services and the database (down to 0) are put back.
func (p *releasePattern) Cleanup(ctx context.Context, env *Env) error {
	if p.ups == nil {
		return nil
	}
	if err := setFault(ctx, env, faultURLs(env, p.ups, p.next), nil); err != nil {
		// Not restoring: a pool that may still fail stays off traffic.
		return err
	}
	var errs []error
	if id := p.releaseID(); id != "" {
		errs = append(errs, p.settle(ctx, env, id))
	}
	if p.guarded {
		errs = append(errs, waitGuardQuiet(ctx, env, guardSubjects(p.ups, DrillReleaseFlag), 30*time.Second))
	}
	errs = append(errs, restoreOriginal(ctx, env, p.orig))
	for _, svc := range p.services {
		cur, err := env.Admin.GetService(ctx, svc, 0)
		if err != nil || jsonEqual(cur.Config, releaseGoodConfig) {
			errs = append(errs, err)
			continue
		}
		_, err = env.Admin.PutService(ctx, svc, releaseGoodConfig, admin.WriteOptions{Reason: env.reason("the release drill's service back to its configuration")})
		errs = append(errs, err)
	}
	errs = append(errs, p.migrate(ctx, env, "down", "--to", "0"))
	return errors.Join(errs...)
}

// settle brings a release the drill made to an end: finished if still
// open, and rolled back (waiting up to 30 s for the elected instance).
func (p *releasePattern) settle(ctx context.Context, env *Env, id string) error {
	rv, err := env.Admin.Release(ctx, id)
	if err != nil {
		return err
	}
	wo := admin.WriteOptions{Reason: env.reason("clean up the drill's release")}
	if rv.Status == release.Open {
		if _, err := env.Admin.FinishRelease(ctx, id, wo); err != nil {
			return err
		}
	}
	if rv.Status == release.Open || rv.Status == release.Finished {
		if _, err := env.Admin.RollbackRelease(ctx, id, admin.ReleaseRollbackOptions{}, wo); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rv, err := env.Admin.Release(ctx, id)
		if err != nil {
			return err
		}
		if rv.Status != release.RollingBack {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("release %s still rolling back 30s after the drill", id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var (
	_ Pattern = (*releasePattern)(nil)
	_ Stepped = (*releasePattern)(nil)
)
