package control

import (
	"context"

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
