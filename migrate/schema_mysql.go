package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

func dumpMySQL(ctx context.Context, db *sql.DB) (*Schema, error) {
	s := &Schema{}
	err := queryRows(ctx, db, `
		SELECT TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, ''), COALESCE(TABLE_COLLATION, '')
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`,
		func(r *sql.Rows) error {
			var name, typ, engine, collation string
			if err := r.Scan(&name, &typ, &engine, &collation); err != nil {
				return err
			}
			if internalTable(name) {
				return nil
			}
			switch typ {
			case "BASE TABLE":
				s.add("table "+name, "ENGINE="+engine+" COLLATE="+collation)
			case "SEQUENCE":
				s.add("sequence "+name, "")
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("tables: %w", err)
	}
	err = queryRows(ctx, db, `
		SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT, c.EXTRA,
			COALESCE(c.COLLATION_NAME, ''), COALESCE(c.GENERATION_EXPRESSION, '')
		FROM information_schema.COLUMNS c
		JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
		WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'`,
		func(r *sql.Rows) error {
			var table, col, typ, nullable, extra, collation, gen string
			var def sql.NullString
			if err := r.Scan(&table, &col, &typ, &nullable, &def, &extra, &collation, &gen); err != nil {
				return err
			}
			if internalTable(table) {
				return nil
			}
			// MariaDB reports "no default" on a nullable column as the
			// literal NULL.
			if def.Valid && def.String == "NULL" {
				def = sql.NullString{}
			}
			if gen != "" {
				extra = strings.TrimSpace(extra + " AS (" + gen + ")")
			}
			if collation != "" {
				extra = strings.TrimSpace(extra + " COLLATE " + collation)
			}
			s.add("column "+table+"."+col, columnDef(typ, nullable == "NO", def, extra))
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("columns: %w", err)
	}
	err = queryRows(ctx, db, `
		SELECT tc.TABLE_NAME, tc.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE,
			GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ', '),
			COALESCE(MAX(k.REFERENCED_TABLE_NAME), ''),
			COALESCE(GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ', '), ''),
			COALESCE(MAX(rc.UPDATE_RULE), ''), COALESCE(MAX(rc.DELETE_RULE), '')
		FROM information_schema.TABLE_CONSTRAINTS tc
		JOIN information_schema.KEY_COLUMN_USAGE k
			ON k.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND k.TABLE_NAME = tc.TABLE_NAME AND k.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
		LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS rc
			ON rc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND rc.TABLE_NAME = tc.TABLE_NAME AND rc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
		WHERE tc.TABLE_SCHEMA = DATABASE() AND tc.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')
		GROUP BY tc.TABLE_NAME, tc.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE`,
		func(r *sql.Rows) error {
			var table, name, typ, cols, refTable, refCols, onUpdate, onDelete string
			if err := r.Scan(&table, &name, &typ, &cols, &refTable, &refCols, &onUpdate, &onDelete); err != nil {
				return err
			}
			if internalTable(table) {
				return nil
			}
			def := typ + " (" + cols + ")"
			if typ == "FOREIGN KEY" {
				def += fmt.Sprintf(" REFERENCES %s(%s) ON UPDATE %s ON DELETE %s", refTable, refCols, onUpdate, onDelete)
			}
			s.add(strings.ToLower(typ)+" "+table+"."+name, def)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("constraints: %w", err)
	}
	if err := dumpMySQLChecks(ctx, db, s); err != nil {
		return nil, fmt.Errorf("check constraints: %w", err)
	}
	err = queryRows(ctx, db, `
		SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE,
			GROUP_CONCAT(CONCAT(COALESCE(COLUMN_NAME, '(expression)'), COALESCE(CONCAT('(', SUB_PART, ')'), ''),
				IF(COLLATION = 'D', ' DESC', '')) ORDER BY SEQ_IN_INDEX SEPARATOR ', ')
		FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME <> 'PRIMARY'
		GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE`,
		func(r *sql.Rows) error {
			var table, name, typ, cols string
			var nonUnique int
			if err := r.Scan(&table, &name, &nonUnique, &typ, &cols); err != nil {
				return err
			}
			if internalTable(table) {
				return nil
			}
			def := "INDEX"
			if nonUnique == 0 {
				def = "UNIQUE INDEX"
			}
			s.add("index "+table+"."+name, fmt.Sprintf("%s USING %s (%s)", def, typ, cols))
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("indexes: %w", err)
	}
	err = queryRows(ctx, db, `
		SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()`,
		func(r *sql.Rows) error {
			var name, def, check string
			if err := r.Scan(&name, &def, &check); err != nil {
				return err
			}
			if check != "NONE" {
				def += " WITH " + check + " CHECK OPTION"
			}
			s.add("view "+name, squash(def))
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	err = queryRows(ctx, db, `
		SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT
		FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()`,
		func(r *sql.Rows) error {
			var table, name, timing, event, stmt string
			if err := r.Scan(&table, &name, &timing, &event, &stmt); err != nil {
				return err
			}
			s.add("trigger "+table+"."+name, squash(timing+" "+event+" "+stmt))
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("triggers: %w", err)
	}
	err = queryRows(ctx, db, `
		SELECT ROUTINE_NAME, ROUTINE_TYPE, MD5(COALESCE(ROUTINE_DEFINITION, ''))
		FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()`,
		func(r *sql.Rows) error {
			var name, typ, sum string
			if err := r.Scan(&name, &typ, &sum); err != nil {
				return err
			}
			s.add(strings.ToLower(typ)+" "+name, "md5 "+sum)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("routines: %w", err)
	}
	return s, nil
}

// dumpMySQLChecks reads check constraints. MariaDB's CHECK_CONSTRAINTS has
// a TABLE_NAME column (check names are per table there); MySQL 8's does
// not, and names are per schema, so it is joined to TABLE_CONSTRAINTS.
func dumpMySQLChecks(ctx context.Context, db *sql.DB, s *Schema) error {
	scan := func(r *sql.Rows) error {
		var table, name, clause string
		if err := r.Scan(&table, &name, &clause); err != nil {
			return err
		}
		if internalTable(table) {
			return nil
		}
		s.add("check "+table+"."+name, "CHECK ("+squash(clause)+")")
		return nil
	}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return err
	}
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return queryRows(ctx, db, `
			SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE
			FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()`, scan)
	}
	return queryRows(ctx, db, `
		SELECT tc.TABLE_NAME, cc.CONSTRAINT_NAME, cc.CHECK_CLAUSE
		FROM information_schema.CHECK_CONSTRAINTS cc
		JOIN information_schema.TABLE_CONSTRAINTS tc
			ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME AND tc.CONSTRAINT_TYPE = 'CHECK'
		WHERE cc.CONSTRAINT_SCHEMA = DATABASE()`, scan)
}
