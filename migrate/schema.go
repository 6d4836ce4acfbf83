package migrate

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// Schema is a normalised dump of a database catalog: one entry per table,
// column, key, constraint, index, view, trigger, sequence and routine,
// keyed so that two dumps compare entry by entry. Column order is not part
// of the key: PostgreSQL cannot put a re-added column back in its old
// position, so a down that re-adds a dropped column still matches.
type Schema struct {
	Objects []Object
}

// Object is one schema entry. Key names it ("index users_email_idx"), Def
// is its normalised definition.
type Object struct {
	Key string
	Def string
}

// Change is one difference between two schema dumps.
type Change struct {
	Key    string
	Before string // empty if the object did not exist before
	After  string // empty if the object does not exist after
}

// String renders c for a person reading a verify failure.
func (c Change) String() string {
	switch {
	case c.After == "" && c.Before != "":
		return fmt.Sprintf("- %s: %s (removed)", c.Key, c.Before)
	case c.Before == "" && c.After != "":
		return fmt.Sprintf("+ %s: %s (added)", c.Key, c.After)
	}
	return fmt.Sprintf("~ %s: was %s, now %s", c.Key, c.Before, c.After)
}

func (s *Schema) add(key, def string) {
	if def == "" {
		def = "(exists)"
	}
	s.Objects = append(s.Objects, Object{Key: key, Def: def})
}

func (s *Schema) sort() {
	slices.SortFunc(s.Objects, func(a, b Object) int { return cmp.Compare(a.Key, b.Key) })
}

// String renders the whole dump, one object a line.
func (s *Schema) String() string {
	var b strings.Builder
	for _, o := range s.Objects {
		fmt.Fprintf(&b, "%s: %s\n", o.Key, o.Def)
	}
	return b.String()
}

// Diff lists what changed from before to after, in key order.
func Diff(before, after *Schema) []Change {
	a := make(map[string]string, len(before.Objects))
	for _, o := range before.Objects {
		a[o.Key] = o.Def
	}
	b := make(map[string]string, len(after.Objects))
	for _, o := range after.Objects {
		b[o.Key] = o.Def
	}
	var out []Change
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, Change{Key: k, Before: v, After: w})
		}
	}
	for k, w := range b {
		if _, ok := a[k]; !ok {
			out = append(out, Change{Key: k, After: w})
		}
	}
	slices.SortFunc(out, func(x, y Change) int { return cmp.Compare(x.Key, y.Key) })
	return out
}

// Internal tables are never part of a dump.
const (
	gooseTable     = "goose_db_version"
	stateTable     = "switchback_migrate_state"
	snapshotsTable = "switchback_migrate_snapshots"
	snapPrefix     = "switchback_snap_"
)

func internalTable(name string) bool {
	name = strings.ToLower(name)
	return name == gooseTable || name == stateTable || name == snapshotsTable || strings.HasPrefix(name, snapPrefix)
}

// DumpSchema reads the schema of the database db is connected to.
func DumpSchema(ctx context.Context, d Dialect, db *sql.DB) (*Schema, error) {
	var s *Schema
	var err error
	switch d {
	case Postgres:
		s, err = dumpPostgres(ctx, db)
	case MySQL:
		s, err = dumpMySQL(ctx, db)
	default:
		s, err = dumpSQLite(ctx, db)
	}
	if err != nil {
		return nil, fmt.Errorf("dump schema: %w", err)
	}
	s.sort()
	return s, nil
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx offer for reading.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryRows runs q and calls scan for every row.
func queryRows(ctx context.Context, db querier, q string, scan func(*sql.Rows) error, args ...any) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// columnDef renders a column the way a person would write it.
func columnDef(typ string, notNull bool, def sql.NullString, extra string) string {
	var b strings.Builder
	b.WriteString(typ)
	if notNull {
		b.WriteString(" NOT NULL")
	} else {
		b.WriteString(" NULL")
	}
	if def.Valid {
		b.WriteString(" DEFAULT " + def.String)
	}
	if extra != "" {
		b.WriteString(" " + extra)
	}
	return b.String()
}

// squash collapses runs of whitespace, so that reformatted but equal SQL
// text compares equal.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }
