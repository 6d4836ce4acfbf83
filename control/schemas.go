package control

import (
	"context"
	"errors"
	"fmt"

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
	// newest first; a *SchemaRefusedError when any is irreversible or a
	// contract.
	PlanDown(ctx context.Context, db string, to int64) ([]migrate.Status, error)
	// Down rolls db down to version to (refusing as PlanDown does) and,
	// when restoreData, restores the data snapshots of the migrations it
	// undid; it returns the migrations undone.
	Down(ctx context.Context, db string, to int64, restoreData bool) ([]migrate.Status, error)
}

// ErrSchemaRefused is wrapped by every *SchemaRefusedError.
var ErrSchemaRefused = errors.New("control: schema down refused")

// SchemaRefusedError refuses a down that would undo a migration that
// cannot be undone safely: one without a Down section, or a contract
// (its Down cannot bring back the data the contract removed).
type SchemaRefusedError struct {
	Database string
	Version  int64
	File     string
	// Reason says why, like "it is a contract migration".
	Reason string
}

func (e *SchemaRefusedError) Error() string {
	return fmt.Sprintf("database %s: migration %s (version %d) cannot be rolled down: %s; nothing was changed; "+
		"to get the schema and the data back, restore them from the migration's snapshot with "+
		"`switchback migrate snapshot restore %d --database %s` after a `switchback migrate down`, or roll forward with a new migration",
		e.Database, e.File, e.Version, e.Reason, e.Version, e.Database)
}

func (e *SchemaRefusedError) Unwrap() error { return ErrSchemaRefused }

// RefuseDown returns a *SchemaRefusedError for the first migration of
// undo (newest first) that a release rollback may not roll down, or nil.
// Implementations of Schemas.PlanDown use it so that every one refuses
// alike.
func RefuseDown(db string, undo []migrate.Status) error {
	for _, s := range undo {
		switch {
		case s.Phase == migrate.PhaseContract:
			return &SchemaRefusedError{Database: db, Version: s.Version, File: s.File,
				Reason: "it is a contract migration: it removed schema (and data) that older code used, which its Down cannot bring back"}
		case s.Irreversible:
			return &SchemaRefusedError{Database: db, Version: s.Version, File: s.File,
				Reason: "it has no Down section, so rolling it back would only forget it was applied"}
		}
	}
	return nil
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
