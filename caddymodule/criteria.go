package caddymodule

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/a8e2c47e/switchback/criteria"
	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/migrate"
)

// criteriaGlue is the app's share of the external criteria: the databases
// opened from its `database` lines, the loop that probes them (on the
// elected instance) and their metric.
type criteriaGlue struct {
	databases map[string]*criteria.Database
	loop      interface {
		Run(context.Context, func() []*gateway.Snapshot)
		Input(string) ([]guard.CriterionState, *guard.Change)
	}
	value *prometheus.GaugeVec
}

// provisionCriteria checks the fleet setting and opens the databases
// named in the global option (dbs, their placeholders read) for counting
// connections. A SQLite database has none to count: it is left out, and a
// criterion naming it reports that it has no such database.
func (a *App) provisionCriteria(ctx caddy.Context, dbs []databases.Config) error {
	if a.Fleet != "" && a.Fleet != "on" && a.Fleet != fleetOff {
		return fmt.Errorf("switchback: fleet %q: want on or off", a.Fleet)
	}
	a.crit.databases = map[string]*criteria.Database{}
	for _, c := range dbs {
		if t, err := migrate.ParseTarget(c.DSN); err == nil && t.Dialect == migrate.SQLite {
			continue
		}
		db, err := criteria.OpenDatabase(c.Name, c.DSN)
		if err != nil {
			a.closeDatabases()
			return fmt.Errorf("switchback: %w", err)
		}
		a.crit.databases[c.Name] = db
	}
	a.crit.value = promauto.With(ctx.GetMetricsRegistry()).NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchback_guard_criterion_value",
		Help: "Latest value of an external rollback criterion (percent of connections, query value, http status), on the elected instance.",
	}, []string{"deployment", "criterion"})
	if a.control != nil {
		a.crit.loop = a.control.Criteria(&criteria.Prober{Databases: a.crit.databases})
	}
	return nil
}

// closeDatabases closes the criteria's database pools.
func (a *App) closeDatabases() error {
	var errs []error
	for _, db := range a.crit.databases {
		errs = append(errs, db.Close())
	}
	a.crit.databases = nil
	return errors.Join(errs...)
}

// liveSnapshots returns every deployment's live snapshot.
func liveSnapshots() []*gateway.Snapshot {
	var out []*gateway.Snapshot
	deployments.Range(func(_, v any) bool {
		if s := v.(deploymentEntry).Snapshot(); s != nil {
			out = append(out, s)
		}
		return true
	})
	return out
}

// criteriaInput is a deployment's criteria for its judgement.
func (a *App) criteriaInput(name string) ([]guard.CriterionState, *guard.Change) {
	if a.crit.loop == nil {
		return nil, nil
	}
	return a.crit.loop.Input(name)
}

// criteriaStates is what this instance knows of a deployment's criteria:
// nothing unless it probes them.
func (a *App) criteriaStates(name string) []guard.CriterionState {
	st, _ := a.criteriaInput(name)
	return st
}

// setCriteriaGauges exports a judged deployment's criteria values, on the
// instance that probes them.
func (a *App) setCriteriaGauges(v guard.View) {
	if len(a.criteriaStates(v.Deployment)) == 0 {
		return // another instance probes them, and exports them
	}
	for name, c := range v.Criteria {
		a.metrics.breaching.WithLabelValues(v.Deployment, "criterion", name).Set(boolGauge(c.Breach != ""))
		if c.Error == "" && a.crit.value != nil {
			a.crit.value.WithLabelValues(v.Deployment, name).Set(c.Value)
		}
	}
}
