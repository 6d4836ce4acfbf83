package migrate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrVerify is returned by Verify when a migration's down does not restore
// the schema its up started from.
var ErrVerify = errors.New("migrate: verify failed")

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Dialect  Dialect         `json:"dialect"`
	Checked  []VerifyResult  `json:"checked"`
	Failures []VerifyFailure `json:"failures,omitempty"`
	Duration time.Duration   `json:"duration_ns"`
}

// VerifyResult is one migration's round trip.
type VerifyResult struct {
	Version int64  `json:"version"`
	File    string `json:"file"`
	OK      bool   `json:"ok"`
}

// VerifyFailure names a migration whose down failed to restore the schema,
// and what it failed to restore.
type VerifyFailure struct {
	Version int64    `json:"version"`
	File    string   `json:"file"`
	Reason  string   `json:"reason"`
	Changes []Change `json:"changes,omitempty"`
}

func (f VerifyFailure) String() string {
	s := fmt.Sprintf("%s (version %d): %s", f.File, f.Version, f.Reason)
	for _, c := range f.Changes {
		s += "\n    " + c.String()
	}
	return s
}

// Verify proves every migration in fsys reversible on a scratch database of
// dbURL's kind: a temporary SQLite file, or a temporary database on the
// PostgreSQL or MySQL server dbURL points at (which needs CREATE DATABASE).
// For each migration in order it dumps the schema, applies up, applies
// down, dumps again and requires the two dumps to be equal, then applies
// up again. A missing or empty down is a failure. The scratch database is
// removed afterwards. Verify stops at the first down that fails to restore
// the schema, since the next up would fail on what it left. It returns ErrVerify along with the report when
// a migration fails the round trip.
func Verify(ctx context.Context, dbURL string, fsys fs.FS, opts ...Option) (*VerifyReport, error) {
	t, err := ParseTarget(dbURL)
	if err != nil {
		return nil, err
	}
	if _, err := LoadMigrations(fsys); err != nil {
		return nil, err
	}
	scratch, drop, err := Scratch(ctx, t)
	if err != nil {
		return nil, err
	}
	rep, err := verify(ctx, scratch, fsys, opts...)
	if derr := drop(); derr != nil {
		err = errors.Join(err, derr)
	}
	return rep, err
}

func verify(ctx context.Context, t Target, fsys fs.FS, opts ...Option) (*VerifyReport, error) {
	began := time.Now()
	m, err := open(ctx, t, fsys, opts...)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	rep := &VerifyReport{Dialect: t.Dialect}
	err = m.withLock(ctx, nil, func(ctx context.Context) error {
		if err := m.ensureInternal(ctx); err != nil {
			return err
		}
		run := &Report{}
		for _, mig := range m.migrations {
			res := VerifyResult{Version: mig.Version, File: mig.File}
			before, err := DumpSchema(ctx, t.Dialect, m.db)
			if err != nil {
				return err
			}
			// A migration that fails a step is this migration's failure,
			// reported with the others; what it left would make later
			// steps fail for the wrong reason, so verify stops there.
			failed := func(what string, err error) error {
				if !errors.Is(err, ErrMigrationFailed) || run.Failed == nil {
					return fmt.Errorf("verify %s: %s: %w", mig.File, what, err)
				}
				reason := what + " failed: " + run.Failed.Error
				if len(run.Failed.Left) > 0 {
					reason += "; it left behind: " + strings.Join(run.Failed.Left, "; ")
				}
				rep.Failures = append(rep.Failures, VerifyFailure{Version: mig.Version, File: mig.File, Reason: reason})
				rep.Checked = append(rep.Checked, res)
				run.Failed = nil
				return nil
			}
			if err := m.step(ctx, run, mig, true); err != nil {
				return failed("up", err)
			}
			if len(mig.Down) == 0 {
				rep.Failures = append(rep.Failures, VerifyFailure{Version: mig.Version, File: mig.File,
					Reason: "the Down section is missing or empty; every migration needs a down that restores the schema"})
				rep.Checked = append(rep.Checked, res)
				continue
			}
			if err := m.step(ctx, run, mig, false); err != nil {
				return failed("down", err)
			}
			after, err := DumpSchema(ctx, t.Dialect, m.db)
			if err != nil {
				return err
			}
			if changes := Diff(before, after); len(changes) > 0 {
				// What the down left behind would make the next up fail
				// for the wrong reason: stop at the first broken down.
				rep.Failures = append(rep.Failures, VerifyFailure{Version: mig.Version, File: mig.File,
					Reason: "down did not restore the schema that up started from (- was there before up, + is there after down, ~ differs)", Changes: changes})
				rep.Checked = append(rep.Checked, res)
				return nil
			}
			if err := m.step(ctx, run, mig, true); err != nil {
				// The down restored the schema but not all the up needs
				// to run again (a row, a sequence): no round trip.
				return failed("up after down", err)
			}
			res.OK = true
			rep.Checked = append(rep.Checked, res)
		}
		return nil
	})
	rep.Duration = time.Since(began)
	if err != nil {
		return rep, err
	}
	if len(rep.Failures) > 0 {
		return rep, fmt.Errorf("%w: %d of %d migrations", ErrVerify, len(rep.Failures), len(rep.Checked))
	}
	return rep, nil
}

// Scratch creates an empty database of t's kind: a temporary SQLite file,
// or a new database with a random name on t's PostgreSQL or MySQL server.
// drop removes it.
func Scratch(ctx context.Context, t Target) (_ Target, drop func() error, _ error) {
	var b [6]byte
	rand.Read(b[:])
	name := "switchback_verify_" + hex.EncodeToString(b[:])
	if t.Dialect == SQLite {
		dir, err := os.MkdirTemp("", "switchback-verify-")
		if err != nil {
			return Target{}, nil, fmt.Errorf("scratch database: %w", err)
		}
		// A throwaway file: durability buys nothing and costs a sync per
		// commit.
		s, err := t.withDatabase(filepath.Join(dir, name+".db") + "?_pragma=synchronous(OFF)&_pragma=journal_mode(MEMORY)")
		if err != nil {
			os.RemoveAll(dir)
			return Target{}, nil, err
		}
		return s, func() error { return os.RemoveAll(dir) }, nil
	}
	admin := func(q string) error {
		db, err := sql.Open(t.Dialect.driver(), t.DSN)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(context.WithoutCancel(ctx), q)
		return err
	}
	if err := admin("CREATE DATABASE " + name); err != nil {
		return Target{}, nil, fmt.Errorf("scratch database on %s: %w", t.URL, err)
	}
	s, err := t.withDatabase(name)
	if err != nil {
		return Target{}, nil, err
	}
	dropQ := "DROP DATABASE IF EXISTS " + name
	if t.Dialect == Postgres {
		dropQ += " WITH (FORCE)"
	}
	return s, func() error {
		if err := admin(dropQ); err != nil {
			return fmt.Errorf("drop scratch database %s: %w", name, err)
		}
		return nil
	}, nil
}
