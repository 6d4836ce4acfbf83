package control

import (
	"context"
	"time"

	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
)

// Schemas is the gateway's view of the databases named by the `database
// NAME DSN` global option (package databases implements it): their schema
// versions, applied migrations, and the down a release rollback runs.
type Schemas interface {
	// Names lists the configured databases.
	Names() []string
	// Version is a database's current migration version.
	Version(ctx context.Context, db string) (int64, error)
	// Applied lists the applied migrations with their phase
	// (expand/contract) and whether each has a down.
	Applied(ctx context.Context, db string) ([]migrate.Status, error)
	// PlanDown says which migrations a down to version to would undo,
	// newest first; an error that is databases.ErrRefused when any is
	// irreversible or a contract.
	PlanDown(ctx context.Context, db string, to int64) ([]migrate.Status, error)
	// Down rolls db down to version to (refusing as PlanDown does) and,
	// when restoreData, restores the data snapshots of the migrations it
	// undid; it returns the migrations undone.
	Down(ctx context.Context, db string, to int64, restoreData bool) ([]migrate.Status, error)
}

// migrations turns the migrate package's statuses into the release
// package's view.
func migrations(st []migrate.Status) []release.Migration {
	out := make([]release.Migration, 0, len(st))
	for _, s := range st {
		out = append(out, release.Migration{Version: s.Version, File: s.File,
			Contract: s.Phase == migrate.PhaseContract, Irreversible: s.Irreversible})
	}
	return out
}

// How long the control plane waits on a database. A blackholed database
// answers nothing, and its drivers have no connect timeout of their own:
// without these the elected driver (rollouts, release rollbacks) would
// wait for the kernel to give up, minutes, while still leading.
const (
	// schemaReadTimeout bounds a read: a version, the applied migrations,
	// a plan.
	schemaReadTimeout = 5 * time.Second
	// schemaDownTimeout bounds a down, which may rewrite large tables.
	schemaDownTimeout = 10 * time.Minute
)

// boundedSchemas is Schemas with the timeouts above. A down also runs to
// its end when the caller's context ends (a config reload stops the
// driver): a migration cut short outside a transaction (MySQL DDL) would
// be left half-applied for an operator to resolve by hand.
type boundedSchemas struct{ Schemas }

func bound(s Schemas) Schemas {
	if s == nil {
		return nil
	}
	return boundedSchemas{s}
}

func (b boundedSchemas) Version(ctx context.Context, db string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, schemaReadTimeout)
	defer cancel()
	return b.Schemas.Version(ctx, db)
}

func (b boundedSchemas) Applied(ctx context.Context, db string) ([]migrate.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, schemaReadTimeout)
	defer cancel()
	return b.Schemas.Applied(ctx, db)
}

func (b boundedSchemas) PlanDown(ctx context.Context, db string, to int64) ([]migrate.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, schemaReadTimeout)
	defer cancel()
	return b.Schemas.PlanDown(ctx, db, to)
}

func (b boundedSchemas) Down(ctx context.Context, db string, to int64, restoreData bool) ([]migrate.Status, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), schemaDownTimeout)
	defer cancel()
	return b.Schemas.Down(ctx, db, to, restoreData)
}
