package control

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/release"
)

// Timeline entry kinds.
const (
	TimelineDeploymentVersion = "deployment_version"
	TimelineServiceVersion    = "service_version"
	TimelineChangeSet         = "changeset"
	TimelineEvent             = "event"
	TimelineRollbackStep      = "rollback_step"
	TimelineMigration         = "migration"
)

// TimelineEntry is one thing that happened to a release: a version it
// wrote, a change set, an event of its deployment (a guard breach, a
// fallback), a rollback step.
type TimelineEntry struct {
	Time time.Time `json:"time"`
	// Kind is deployment_version, service_version, changeset, migration,
	// event or rollback_step.
	Kind       string `json:"kind"`
	Deployment string `json:"deployment,omitempty"`
	// Database and Migration name a migration the release applied.
	Database  string `json:"database,omitempty"`
	Migration int64  `json:"migration,omitempty"`
	Service   string `json:"service,omitempty"`
	Version   uint64 `json:"version,omitempty"`
	ChangeSet string `json:"changeset,omitempty"`
	// Event is an event's kind (fallback, rollout_step, ...).
	Event string `json:"event,omitempty"`
	// Step, Status and Duration describe a rollback step.
	Step     release.StepKind   `json:"step,omitempty"`
	Status   string             `json:"status,omitempty"`
	Duration gateway.Duration   `json:"duration,omitempty"`
	Author   string             `json:"author,omitempty"`
	Source   configstore.Source `json:"source,omitempty"`
	Summary  string             `json:"summary"`
}

// maxTimelineVersions bounds the versions of one document a timeline
// reads: the store keeps no more by default.
const maxTimelineVersions = 1000

// ReleaseTimeline lists, oldest first, everything linked to r: the
// deployment's versions in (Before, After] (or up to the current one while
// it is open), every service's versions written in the same ranges, the
// change sets applied while it was open, the migrations applied in
// (Before, After] of each database, its deployment's events from its
// start to the end of its rollback, and the rollback's steps with their
// durations. Versions retention dropped are left out.
func (c *Control) ReleaseTimeline(ctx context.Context, r release.Release) ([]TimelineEntry, error) {
	var out []TimelineEntry
	doc, err := c.store.Get(ctx, r.Deployment)
	if err != nil {
		return nil, err
	}
	end := doc.Meta.Version
	if r.After != nil {
		end = r.After.DeploymentVersion
	}
	metas, err := c.versionsIn(ctx, r.Before.DeploymentVersion, end, doc.Meta.Version, func(limit int) ([]configstore.Meta, error) {
		return c.store.History(ctx, r.Deployment, limit)
	})
	if err != nil {
		return nil, err
	}
	for _, m := range metas {
		out = append(out, metaEntry(TimelineDeploymentVersion, m, r.Deployment, ""))
	}

	svcs, err := c.store.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	current := make(map[string]uint64, len(svcs))
	for _, d := range svcs {
		current[d.Name] = d.Meta.Version
	}
	for _, name := range slices.Sorted(maps.Keys(current)) {
		from, to := r.Before.Services[name], current[name]
		if r.After != nil {
			to = r.After.Services[name]
		}
		metas, err := c.versionsIn(ctx, from, to, current[name], func(limit int) ([]configstore.Meta, error) {
			return c.store.ServiceHistory(ctx, name, limit)
		})
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			out = append(out, metaEntry(TimelineServiceVersion, m, "", name))
		}
	}

	ids := []string(nil)
	if r.After != nil {
		ids = r.After.ChangeSets
	} else if ids, err = c.changeSetsSince(ctx, r.Started); err != nil {
		return nil, err
	}
	for _, id := range ids {
		cs, err := c.store.GetChangeSet(ctx, id)
		if errors.Is(err, configstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, TimelineEntry{Time: cs.Time, Kind: TimelineChangeSet, ChangeSet: cs.ID, Author: cs.Author,
			Source: cs.Source, Summary: changeSetSummary(cs)})
	}

	out = append(out, c.migrationsIn(ctx, r)...)

	evs, err := c.store.Events(ctx, r.Deployment, 0)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		if ev.Time.Before(r.Started) || (r.Rollback != nil && !r.Rollback.Finished.IsZero() && ev.Time.After(r.Rollback.Finished)) {
			continue
		}
		out = append(out, TimelineEntry{Time: ev.Time, Kind: TimelineEvent, Deployment: ev.Deployment, Version: ev.Version,
			Event: ev.Kind, Author: ev.Instance, Summary: ev.Reason})
	}

	if r.Rollback != nil {
		for _, st := range r.Rollback.Steps {
			if st.Started.IsZero() {
				continue
			}
			e := TimelineEntry{Time: st.Started, Kind: TimelineRollbackStep, Deployment: r.Deployment, Step: st.Kind,
				Status: st.Status, Summary: cmp.Or(st.Result, st.Plan)}
			if !st.Finished.IsZero() {
				e.Duration = gateway.Duration(st.Finished.Sub(st.Started))
			}
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b TimelineEntry) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// migrationsIn lists the migrations applied while r was open: those of
// each database between its version before and after (or now, while it
// is open) that are still applied. A database that cannot be read is left
// out of the timeline, which is a view, with a warning.
func (c *Control) migrationsIn(ctx context.Context, r release.Release) []TimelineEntry {
	if c.schemas == nil {
		return nil
	}
	var out []TimelineEntry
	for _, db := range slices.Sorted(maps.Keys(r.Before.Databases)) {
		applied, err := c.schemas.Applied(ctx, db)
		if err != nil {
			c.log.Warn("release timeline: cannot read the database's migrations", zap.String("database", db), zap.Error(err))
			continue
		}
		from, to := r.Before.Databases[db], int64(math.MaxInt64)
		if r.After != nil {
			to = r.After.Databases[db]
		}
		for _, m := range applied {
			if m.Version > from && m.Version <= to {
				out = append(out, TimelineEntry{Time: m.AppliedAt, Kind: TimelineMigration, Database: db, Migration: m.Version,
					Summary: "migration " + m.File + " (" + string(m.Phase) + ") applied to " + db})
			}
		}
	}
	return out
}

// versionsIn lists the metadata of versions (from, to] of a document now
// at current, oldest first, reading its history newest first through
// list.
func (c *Control) versionsIn(ctx context.Context, from, to, current uint64, list func(limit int) ([]configstore.Meta, error)) ([]configstore.Meta, error) {
	if to <= from || current <= from {
		return nil, nil
	}
	limit := min(current-from, maxTimelineVersions)
	metas, err := list(int(limit))
	if errors.Is(err, configstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []configstore.Meta
	for _, m := range slices.Backward(metas) {
		if m.Version > from && m.Version <= to {
			out = append(out, m)
		}
	}
	return out, nil
}

func metaEntry(kind string, m configstore.Meta, deployment, service string) TimelineEntry {
	return TimelineEntry{Time: m.Time, Kind: kind, Deployment: deployment, Service: service, Version: m.Version,
		ChangeSet: m.ChangeSet, Author: m.Author, Source: m.Source, Summary: withWhy(m.Summary, m.Reason)}
}

func changeSetSummary(cs configstore.ChangeSet) string {
	s := ""
	for i, e := range cs.Entries {
		if i > 0 {
			s += "; "
		}
		if e.Service != "" {
			s += "service " + e.Service
		} else {
			s += "deployment " + e.Deployment
		}
		s += ": " + e.Summary
	}
	return withWhy(s, cs.Reason)
}
