package migrate

import (
	"slices"
	"strings"
)

// The DDL simulator: Lint replays every Up section through a history of
// tables and columns, so a statement is judged against the schema the
// earlier migrations built (a type change is narrowing or widening only
// relative to the column's type before it).

// destructive is one destructive change found in a statement.
type destructive struct {
	what    string
	removes []UsageObject // names that stop existing
}

// colInfo is what earlier migrations say about a column.
type colInfo struct {
	typ        string
	notNull    bool
	hasDefault bool
}

// history follows tables and column types through the Up sections, so that
// a type change can be judged narrowing or widening.
type history struct {
	tables map[string]map[string]colInfo
}

func newHistory() *history { return &history{tables: map[string]map[string]colInfo{}} }

func (h *history) column(table, col string) (colInfo, bool) {
	c, ok := h.tables[table][col]
	return c, ok
}

func (h *history) setColumn(table, col string, c colInfo) {
	if h.tables[table] == nil {
		h.tables[table] = map[string]colInfo{}
	}
	h.tables[table][col] = c
}

// apply records one statement and returns what is destructive in it.
func (h *history) apply(stmt string) []destructive {
	ts := tokenize(stmt)
	if len(ts) < 2 {
		return nil
	}
	switch {
	case ts[0].is("create") && createTableAt(ts) > 0:
		i := createTableAt(ts)
		i = skipWords(ts, i, "if", "not", "exists")
		if i >= len(ts) {
			return nil
		}
		table := lastName(ts, &i)
		if i < len(ts) && ts[i].text == "(" {
			inner, _ := balanced(ts, i)
			h.tables[table] = map[string]colInfo{}
			for _, def := range splitTop(inner) {
				if len(def) == 0 || isConstraintWord(def[0]) {
					continue
				}
				c := parseColumnDef(def[1:])
				h.setColumn(table, def[0].name(), c)
			}
		}
		return nil
	case ts[0].is("drop") && ts[1].is("table"):
		i := skipWords(ts, 2, "if", "exists")
		var out []destructive
		for i < len(ts) {
			t := lastName(ts, &i)
			if t == "" {
				break
			}
			delete(h.tables, t)
			out = append(out, destructive{what: "DROP TABLE " + t, removes: []UsageObject{{Table: t}}})
			if i < len(ts) && ts[i].text == "," {
				i++
				continue
			}
			break
		}
		return out
	case ts[0].is("rename") && ts[1].is("table"):
		// MySQL: RENAME TABLE a TO b, c TO d
		var out []destructive
		i := 2
		for i < len(ts) {
			from := lastName(ts, &i)
			if i >= len(ts) || !ts[i].is("to") {
				break
			}
			i++
			to := lastName(ts, &i)
			h.tables[to] = h.tables[from]
			delete(h.tables, from)
			out = append(out, destructive{what: "RENAME TABLE " + from + " TO " + to, removes: []UsageObject{{Table: from}}})
			if i < len(ts) && ts[i].text == "," {
				i++
				continue
			}
			break
		}
		return out
	case ts[0].is("alter") && ts[1].is("table"):
		i := skipWords(ts, 2, "if", "exists", "only")
		table := lastName(ts, &i)
		var out []destructive
		for _, action := range splitTop(ts[i:]) {
			out = append(out, h.alter(table, action)...)
		}
		return out
	}
	return nil
}

// alter handles one ALTER TABLE action.
func (h *history) alter(table string, a []token) []destructive {
	if len(a) == 0 {
		return nil
	}
	switch {
	case a[0].is("drop"):
		i := 1
		if i < len(a) && (a[i].is("constraint") || a[i].is("index") || a[i].is("key") || a[i].is("primary") ||
			a[i].is("foreign") || a[i].is("check") || a[i].is("partition") || a[i].is("default") || a[i].is("unique")) {
			return nil
		}
		i = skipWords(a, i, "column", "if", "exists")
		if i >= len(a) {
			return nil
		}
		col := a[i].name()
		delete(h.tables[table], col)
		return []destructive{{what: "DROP COLUMN " + table + "." + col, removes: []UsageObject{{Table: table, Column: col}}}}
	case a[0].is("rename"):
		i := 1
		switch {
		case i < len(a) && (a[i].is("to") || a[i].is("as")) || len(a) == 2:
			if a[i].is("to") || a[i].is("as") {
				i++
			}
			if i >= len(a) {
				return nil
			}
			to := a[i].name()
			h.tables[to] = h.tables[table]
			delete(h.tables, table)
			return []destructive{{what: "RENAME of table " + table + " to " + to, removes: []UsageObject{{Table: table}}}}
		case i < len(a) && (a[i].is("index") || a[i].is("key") || a[i].is("constraint")):
			return nil
		}
		i = skipWords(a, i, "column")
		if i+2 >= len(a) {
			return nil
		}
		from, to := a[i].name(), a[i+2].name()
		if c, ok := h.column(table, from); ok {
			h.setColumn(table, to, c)
			delete(h.tables[table], from)
		}
		return []destructive{{what: "RENAME of column " + table + "." + from + " to " + to, removes: []UsageObject{{Table: table, Column: from}}}}
	case a[0].is("add"):
		i := 1
		if i < len(a) && isConstraintWord(a[i]) {
			return nil
		}
		i = skipWords(a, i, "column", "if", "not", "exists")
		if i >= len(a) {
			return nil
		}
		col := a[i].name()
		c := parseColumnDef(a[i+1:])
		h.setColumn(table, col, c)
		if c.notNull && !c.hasDefault {
			return []destructive{{what: "ADD COLUMN " + table + "." + col + " NOT NULL without a DEFAULT"}}
		}
		return nil
	case a[0].is("modify") || a[0].is("change"):
		// MySQL: MODIFY [COLUMN] c def; CHANGE [COLUMN] old new def.
		i := skipWords(a, 1, "column")
		if i >= len(a) {
			return nil
		}
		from := a[i].name()
		to := from
		if a[0].is("change") {
			i++
			if i >= len(a) {
				return nil
			}
			to = a[i].name()
		}
		c := parseColumnDef(a[i+1:])
		old, known := h.column(table, from)
		var out []destructive
		if to != from {
			out = append(out, destructive{what: "RENAME of column " + table + "." + from + " to " + to, removes: []UsageObject{{Table: table, Column: from}}})
			delete(h.tables[table], from)
		}
		if why := narrowing(old.typ, c.typ, known); why != "" {
			out = append(out, destructive{what: "changing the type of " + table + "." + from + " " + why})
		}
		if c.notNull && !c.hasDefault && !(known && old.notNull) {
			out = append(out, destructive{what: "making " + table + "." + to + " NOT NULL without a DEFAULT"})
		}
		h.setColumn(table, to, c)
		return out
	case a[0].is("alter"):
		// PostgreSQL: ALTER [COLUMN] c TYPE t | SET DATA TYPE t | SET NOT NULL | SET DEFAULT x | DROP DEFAULT
		i := skipWords(a, 1, "column")
		if i+1 >= len(a) {
			return nil
		}
		col := a[i].name()
		old, known := h.column(table, col)
		rest := a[i+1:]
		switch {
		case rest[0].is("type") || (len(rest) > 2 && rest[0].is("set") && rest[1].is("data") && rest[2].is("type")):
			j := 1
			if !rest[0].is("type") {
				j = 3
			}
			newType := typeTokens(rest[j:])
			why := narrowing(old.typ, newType, known)
			old.typ = newType
			h.setColumn(table, col, old)
			if why != "" {
				return []destructive{{what: "changing the type of " + table + "." + col + " " + why}}
			}
		case len(rest) > 2 && rest[0].is("set") && rest[1].is("not") && rest[2].is("null"):
			had := known && old.hasDefault
			old.notNull = true
			h.setColumn(table, col, old)
			if !had {
				return []destructive{{what: "SET NOT NULL on " + table + "." + col + ", which has no DEFAULT"}}
			}
		case len(rest) > 1 && rest[0].is("set") && rest[1].is("default"):
			old.hasDefault = true
			h.setColumn(table, col, old)
		case len(rest) > 1 && rest[0].is("drop") && rest[1].is("default"):
			old.hasDefault = false
			h.setColumn(table, col, old)
		}
	}
	return nil
}

// createTableAt returns the index just past "TABLE" in a CREATE TABLE
// statement, or 0.
func createTableAt(ts []token) int {
	for i := 1; i < len(ts) && i < 5; i++ {
		if ts[i].is("table") {
			// CREATE TABLE ... AS SELECT has no column list to learn from,
			// but is handled the same.
			return i + 1
		}
		if !(ts[i].is("temporary") || ts[i].is("temp") || ts[i].is("unlogged") || ts[i].is("global") || ts[i].is("local")) {
			return 0
		}
	}
	return 0
}

func skipWords(ts []token, i int, words ...string) int {
	for i < len(ts) && slices.ContainsFunc(words, ts[i].is) {
		i++
	}
	return i
}

// lastName reads a possibly qualified name at ts[*i] and returns its last
// part.
func lastName(ts []token, i *int) string {
	name := ""
	for *i < len(ts) {
		t := ts[*i]
		if t.kind != tokWord && t.kind != tokIdent {
			break
		}
		name = t.name()
		*i++
		if *i < len(ts) && ts[*i].text == "." {
			*i++
			continue
		}
		break
	}
	return name
}

// splitTop splits tokens at commas outside parentheses.
func splitTop(ts []token) [][]token {
	var out [][]token
	depth, start := 0, 0
	for i, t := range ts {
		if t.kind != tokPunct {
			continue
		}
		switch t.text {
		case "(":
			depth++
		case ")":
			depth--
		case ",":
			if depth == 0 {
				out = append(out, ts[start:i])
				start = i + 1
			}
		case ";":
			if depth == 0 {
				out = append(out, ts[start:i])
				start = i + 1
			}
		}
	}
	if start < len(ts) {
		out = append(out, ts[start:])
	}
	return out
}

func isConstraintWord(t token) bool {
	for _, w := range []string{"constraint", "primary", "unique", "foreign", "check", "key", "index", "exclude", "like", "fulltext", "spatial"} {
		if t.is(w) {
			return true
		}
	}
	return false
}

// columnStops end the type part of a column definition.
var columnStops = []string{"not", "null", "default", "primary", "unique", "references", "check", "constraint",
	"collate", "generated", "auto_increment", "autoincrement", "as", "on", "comment", "first", "after", "identity"}

func typeTokens(ts []token) string {
	var parts []token
	for i := 0; i < len(ts); i++ {
		if slices.ContainsFunc(columnStops, ts[i].is) || (ts[i].kind == tokWord && ts[i].is("using")) {
			break
		}
		parts = append(parts, ts[i])
	}
	return normaliseType(joinTokens(parts))
}

func parseColumnDef(ts []token) colInfo {
	c := colInfo{typ: typeTokens(ts)}
	for i, t := range ts {
		switch {
		case t.is("not") && i+1 < len(ts) && ts[i+1].is("null"):
			c.notNull = true
		case t.is("primary"):
			c.notNull = true
		case t.is("default"), t.is("auto_increment"), t.is("autoincrement"), t.is("generated"), t.is("identity"):
			c.hasDefault = true
		}
	}
	if strings.Contains(c.typ, "serial") {
		c.hasDefault = true
	}
	return c
}
