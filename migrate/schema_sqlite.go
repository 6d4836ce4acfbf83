package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

func dumpSQLite(ctx context.Context, db *sql.DB) (*Schema, error) {
	s := &Schema{}
	type object struct{ typ, name, table, sql string }
	var objects []object
	err := queryRows(ctx, db, `
		SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_schema
		WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\'`,
		func(r *sql.Rows) error {
			var o object
			if err := r.Scan(&o.typ, &o.name, &o.table, &o.sql); err != nil {
				return err
			}
			if !internalTable(o.table) {
				objects = append(objects, o)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("objects: %w", err)
	}
	for _, o := range objects {
		switch o.typ {
		case "table":
			s.add("table "+o.name, "")
			if err := dumpSQLiteTable(ctx, db, s, o.name, o.sql); err != nil {
				return nil, fmt.Errorf("table %s: %w", o.name, err)
			}
		case "index":
			// Indexes behind UNIQUE and PRIMARY KEY constraints have no
			// SQL; they are listed with their table.
			if o.sql != "" {
				s.add("index "+o.name, normaliseSQL(o.sql))
			}
		case "view", "trigger":
			s.add(o.typ+" "+o.name, normaliseSQL(o.sql))
		}
	}
	return s, nil
}

func dumpSQLiteTable(ctx context.Context, db *sql.DB, s *Schema, table, createSQL string) error {
	var pk []string
	err := queryRows(ctx, db, `SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(?) ORDER BY pk`,
		func(r *sql.Rows) error {
			var name, typ string
			var notNull bool
			var def sql.NullString
			var pkPos, hidden int
			if err := r.Scan(&name, &typ, &notNull, &def, &pkPos, &hidden); err != nil {
				return err
			}
			extra := ""
			if hidden == 2 || hidden == 3 {
				extra = "GENERATED"
			}
			if pkPos > 0 {
				pk = append(pk, name)
			}
			s.add("column "+table+"."+name, columnDef(strings.ToUpper(typ), notNull, def, extra))
			return nil
		}, table)
	if err != nil {
		return fmt.Errorf("columns: %w", err)
	}
	if len(pk) > 0 {
		s.add("primary key "+table, "PRIMARY KEY ("+strings.Join(pk, ", ")+")")
	}
	type fk struct {
		ref, from, to         []string
		onUpdate, onDelete, m string
	}
	fks := map[int]*fk{}
	err = queryRows(ctx, db, `SELECT id, "table", "from", COALESCE("to", ''), on_update, on_delete, "match" FROM pragma_foreign_key_list(?) ORDER BY id, seq`,
		func(r *sql.Rows) error {
			var id int
			var ref, from, to, onUpdate, onDelete, match string
			if err := r.Scan(&id, &ref, &from, &to, &onUpdate, &onDelete, &match); err != nil {
				return err
			}
			f := fks[id]
			if f == nil {
				f = &fk{ref: []string{ref}, onUpdate: onUpdate, onDelete: onDelete, m: match}
				fks[id] = f
			}
			f.from = append(f.from, from)
			f.to = append(f.to, to)
			return nil
		}, table)
	if err != nil {
		return fmt.Errorf("foreign keys: %w", err)
	}
	for _, f := range fks {
		key := fmt.Sprintf("foreign key %s(%s)", table, strings.Join(f.from, ", "))
		s.add(key, fmt.Sprintf("REFERENCES %s(%s) ON UPDATE %s ON DELETE %s MATCH %s",
			f.ref[0], strings.Join(f.to, ", "), f.onUpdate, f.onDelete, f.m))
	}
	var uniques []string
	err = queryRows(ctx, db, `SELECT name FROM pragma_index_list(?) WHERE origin = 'u'`,
		func(r *sql.Rows) error {
			var name string
			if err := r.Scan(&name); err != nil {
				return err
			}
			uniques = append(uniques, name)
			return nil
		}, table)
	if err != nil {
		return fmt.Errorf("unique constraints: %w", err)
	}
	for _, idx := range uniques {
		var cols []string
		err := queryRows(ctx, db, `SELECT COALESCE(name, '(expression)') FROM pragma_index_info(?) ORDER BY seqno`,
			func(r *sql.Rows) error {
				var c string
				if err := r.Scan(&c); err != nil {
					return err
				}
				cols = append(cols, c)
				return nil
			}, idx)
		if err != nil {
			return fmt.Errorf("unique constraint %s: %w", idx, err)
		}
		// Automatic index names depend on declaration order, so the key
		// is the column list.
		s.add(fmt.Sprintf("unique %s(%s)", table, strings.Join(cols, ", ")), "UNIQUE")
	}
	for _, c := range sqliteChecks(createSQL) {
		s.add("check "+table+"."+c.name, "CHECK ("+c.expr+")")
	}
	return nil
}

type sqliteCheck struct{ name, expr string }

// sqliteChecks extracts CHECK constraints from a CREATE TABLE statement:
// SQLite keeps them nowhere but in the statement text. Unnamed checks are
// named by their expression.
func sqliteChecks(createSQL string) []sqliteCheck {
	ts := tokenize(createSQL)
	var out []sqliteCheck
	for i := 0; i < len(ts); i++ {
		if !ts[i].is("check") || i+1 >= len(ts) || ts[i+1].text != "(" {
			continue
		}
		inner, next := balanced(ts, i+1)
		expr := joinTokens(inner)
		name := "(" + expr + ")"
		if i >= 2 && ts[i-2].is("constraint") {
			name = ts[i-1].name()
		}
		out = append(out, sqliteCheck{name: name, expr: expr})
		i = next - 1
	}
	return out
}

// normaliseSQL tokenises and re-joins SQL so that whitespace, comments and
// keyword case do not count as differences.
func normaliseSQL(s string) string { return joinTokens(tokenize(s)) }
