package databases

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRefused is what every *RefusedError is (errors.Is).
var ErrRefused = errors.New("databases: rollback refused")

// RefusedError is PlanDown's and Down's refusal of a migration the gateway
// will not roll back: a contract migration, one without a Down section, or
// one applied but missing from the migrations directory. Nothing was
// changed.
type RefusedError struct {
	Database string
	// Version and File name the newest migration refused; File is empty
	// when the file is missing.
	Version int64
	File    string
	// Reason says why, as a clause: "it is a contract migration …".
	Reason string
	// Irreversible is set when the migration has no Down section: a
	// rollback by hand must pass --allow-irreversible, and only forgets it.
	Irreversible bool
	// Before is the highest applied version below Version: where a
	// rollback of it by hand leaves the schema.
	Before int64
	// Restore is the command that puts back the rows snapshotted before
	// the migration's up, once its schema is rolled back; empty when no
	// snapshot of it is recorded.
	Restore string
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	name := fmt.Sprintf("migration %d", e.Version)
	if e.File != "" {
		name += " (" + e.File + ")"
	}
	fmt.Fprintf(&b, "database %s: %s cannot be rolled back by the gateway: %s; nothing was changed", e.Database, name, e.Reason)
	if e.File == "" {
		b.WriteString("; put its file back in the migrations directory, or roll forward")
		return b.String()
	}
	down := fmt.Sprintf("switchback migrate --database %s down --to %d", e.Database, e.Before)
	if e.Irreversible {
		down += " --allow-irreversible"
	}
	if e.Restore != "" {
		fmt.Fprintf(&b, "; to undo it anyway, run `%s`, then `%s` to put back the rows snapshotted before its up", down, e.Restore)
		return b.String()
	}
	fmt.Fprintf(&b, "; it took no data snapshot, so `switchback migrate --database %s snapshot restore %d` has nothing to put back: roll forward, or run `%s` and restore its rows from a backup",
		e.Database, e.Version, down)
	return b.String()
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }
