package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Create writes a new migration file NUMBER_name.sql into dir, numbered by
// the UTC time at now, with the phase annotation and empty Up and Down
// sections for the author to fill in. It returns the file's path.
func Create(dir, name string, phase Phase, now time.Time) (string, error) {
	if !nameRE.MatchString(name) {
		return "", fmt.Errorf("name %q: accepted: letters, digits, '_' and '-', starting with a letter or digit, such as add_email_verified", name)
	}
	if _, err := ParsePhase(string(phase)); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create migrations directory: %w", err)
	}
	version := now.UTC().Format("20060102150405")
	if existing, _ := fs.Glob(os.DirFS(dir), version+"_*.sql"); len(existing) > 0 {
		return "", fmt.Errorf("version %s is already used by %s; wait a second and run create again", version, existing[0])
	}
	path := filepath.Join(dir, version+"_"+strings.ToLower(strings.ReplaceAll(name, "-", "_"))+".sql")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s already exists", path)
		}
		return "", fmt.Errorf("create migration: %w", err)
	}
	if _, err := f.WriteString(template(phase)); err != nil {
		f.Close()
		return "", fmt.Errorf("write migration: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write migration: %w", err)
	}
	return path, nil
}

func template(phase Phase) string {
	var head string
	if phase == PhaseContract {
		head = `-- +switchback contract
-- Contract: remove what the running code no longer uses. Everything this
-- migration drops or renames must have been unused in production for 30
-- days: ` + "`switchback migrate lint --usage QUERY_LOG`" + ` checks it.
`
	} else {
		head = `-- +switchback expand
-- Expand: only add to the schema, so the code running now keeps working.
-- Drops, renames, narrowed types and NOT NULL without a default belong in
-- a later contract migration.
`
	}
	return head + `-- To copy tables' rows before up runs (restore them with
-- ` + "`switchback migrate snapshot restore VERSION`" + `), add:
--   -- +switchback snapshot TABLE [TABLE...]

-- +goose Up
-- TODO: the change.

-- +goose Down
-- TODO: statements that restore exactly the schema up started from;
-- ` + "`switchback migrate verify`" + ` proves it.
`
}
