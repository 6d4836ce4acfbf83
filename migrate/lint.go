package migrate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/printable"
)

// ErrLint is returned by Lint when it has findings.
var ErrLint = errors.New("migrate: lint failed")

// Finding is one lint problem.
type Finding struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Version int64  `json:"version"`
	// Rule is a short identifier: destructive, unproven-unused,
	// used-recently, usage-coverage, empty-up, empty-down.
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc += ":" + strconv.Itoa(f.Line)
	}
	return fmt.Sprintf("%s: %s [%s]", loc, f.Message, f.Rule)
}

// LintOption configures Lint.
type LintOption interface {
	applyLint(*lintConfig) error
}

type lintOptionFunc func(*lintConfig) error

func (f lintOptionFunc) applyLint(c *lintConfig) error { return f(c) }

type usageSource struct {
	name string
	r    io.Reader
}

type lintConfig struct {
	now    func() time.Time
	unused time.Duration
	usage  []usageSource
}

// WithUsage adds a query log that proves what a contract migration drops
// is unused. The format is detected: PostgreSQL csvlog, MySQL general log,
// or TIMESTAMP<TAB>QUERY lines. Several logs are read as one.
func WithUsage(name string, r io.Reader) LintOption {
	return lintOptionFunc(func(c *lintConfig) error {
		if r == nil {
			return fmt.Errorf("usage log %q: reader must not be nil", name)
		}
		c.usage = append(c.usage, usageSource{name, r})
		return nil
	})
}

// WithLintNow sets the clock the 30-day window ends at.
func WithLintNow(now func() time.Time) LintOption {
	return lintOptionFunc(func(c *lintConfig) error {
		if now == nil {
			return errors.New("now must not be nil")
		}
		c.now = now
		return nil
	})
}

// WithUnusedFor sets how long a dropped object must have been unused.
// Default 30 days.
func WithUnusedFor(d time.Duration) LintOption {
	return lintOptionFunc(func(c *lintConfig) error {
		if d < 24*time.Hour {
			return fmt.Errorf("unused-for %s: accepted: 24h or more", d)
		}
		c.unused = d
		return nil
	})
}

// freshness is how recent the last log entry must be for the log to cover
// the window up to now.
const freshness = 24 * time.Hour

// LintReport is the outcome of Lint.
type LintReport struct {
	Migrations int       `json:"migrations"`
	Findings   []Finding `json:"findings"`
	// Usage summarises the logs read, when any were given.
	Usage *UsageSummary `json:"usage,omitempty"`
}

// UsageSummary is the time span the usage logs cover.
type UsageSummary struct {
	Entries int       `json:"entries"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
}

// Lint checks the migrations in fsys without a database: Up sections may
// drop, rename, narrow or add NOT NULL without a default only in a
// migration marked "-- +switchback contract", and everything a contract
// migration drops or renames away must be absent from the usage logs for
// the last 30 days, with logs that cover those 30 days. Down sections are
// not checked: undoing an expand is destructive by nature. Lint returns
// ErrLint along with the report when there are findings.
func Lint(fsys fs.FS, opts ...LintOption) (*LintReport, error) {
	cfg := lintConfig{now: time.Now, unused: 30 * 24 * time.Hour}
	for _, o := range opts {
		if err := o.applyLint(&cfg); err != nil {
			return nil, err
		}
	}
	migrations, err := LoadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	rep := &LintReport{Migrations: len(migrations)}
	hist := newHistory()
	type drop struct {
		mig  *Migration
		line int
		obj  UsageObject
	}
	var drops []drop
	for _, mig := range migrations {
		find := func(line int, rule, msg string) {
			rep.Findings = append(rep.Findings, Finding{File: mig.File, Line: line, Version: mig.Version, Rule: rule, Message: msg})
		}
		if len(mig.Up) == 0 {
			find(0, "empty-up", "the Up section has no statements")
		}
		if len(mig.Down) == 0 {
			find(0, "empty-down", "the Down section has no statements; every migration needs a down that restores the schema")
		}
		for _, st := range mig.Up {
			for _, d := range hist.apply(st.SQL) {
				if mig.Phase != PhaseContract {
					find(st.Line, "destructive", d.what+" is destructive; it is allowed only in a migration marked `-- +switchback contract`")
					continue
				}
				for _, o := range d.removes {
					drops = append(drops, drop{mig, st.Line, o})
				}
			}
		}
	}
	if len(drops) == 0 {
		return finish(rep)
	}
	if len(cfg.usage) == 0 {
		for _, d := range drops {
			rep.Findings = append(rep.Findings, Finding{File: d.mig.File, Line: d.line, Version: d.mig.Version, Rule: "unproven-unused",
				Message: fmt.Sprintf("contract migration removes %s; pass --usage with query logs showing it unused for %s", d.obj, days(cfg.unused))})
		}
		return finish(rep)
	}
	var objs []UsageObject
	for _, d := range drops {
		if !slices.Contains(objs, d.obj) {
			objs = append(objs, d.obj)
		}
	}
	scan := newUsageScan(objs)
	for _, u := range cfg.usage {
		if err := scan.read(u.name, u.r); err != nil {
			return nil, err
		}
	}
	now := cfg.now().UTC()
	start := now.Add(-cfg.unused)
	rep.Usage = &UsageSummary{Entries: scan.entries, First: scan.first, Last: scan.last}
	covered := scan.entries > 0 && !scan.first.After(start) && !scan.last.Before(now.Add(-freshness))
	for _, d := range drops {
		f := Finding{File: d.mig.File, Line: d.line, Version: d.mig.Version}
		last, used := scan.lastUse[d.obj]
		switch {
		case used && last.After(start):
			f.Rule = "used-recently"
			f.Message = fmt.Sprintf("contract migration removes %s, last used %s (%s before %s), within the %s it must be unused: %s",
				d.obj, last.Format(time.RFC3339), days(now.Sub(last)), now.Format(time.RFC3339), days(cfg.unused), printable.Truncate(scan.lastQuery[d.obj], 120))
		case !covered:
			f.Rule = "usage-coverage"
			span := "no entries"
			if scan.entries > 0 {
				span = fmt.Sprintf("%s to %s", scan.first.Format(time.RFC3339), scan.last.Format(time.RFC3339))
			}
			f.Message = fmt.Sprintf("contract migration removes %s, but the usage logs cover %s; they must cover %s to %s (the last %s, ending within %s of now)",
				d.obj, span, start.Format(time.RFC3339), now.Format(time.RFC3339), days(cfg.unused), freshness)
		default:
			continue
		}
		rep.Findings = append(rep.Findings, f)
	}
	return finish(rep)
}

func finish(rep *LintReport) (*LintReport, error) {
	if len(rep.Findings) > 0 {
		return rep, fmt.Errorf("%w: %d finding(s)", ErrLint, len(rep.Findings))
	}
	return rep, nil
}

func days(d time.Duration) string {
	n := d.Hours() / 24
	if n == float64(int(n)) {
		return fmt.Sprintf("%d days", int(n))
	}
	return fmt.Sprintf("%.1f days", n)
}

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

func normaliseType(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	s = strings.ReplaceAll(s, " (", "(")
	s = strings.ReplaceAll(s, "( ", "(")
	s = strings.ReplaceAll(s, " )", ")")
	s = strings.ReplaceAll(s, " ,", ",")
	return s
}

// typeClass describes a column type for the narrowing check.
type typeClass struct {
	family string // int, text, numeric, float, time, other
	size   int64  // bits for int and float, characters for text (0 = unbounded), precision for numeric
	scale  int64
	name   string
}

func classify(t string) typeClass {
	base, args, _ := strings.Cut(t, "(")
	base = strings.TrimSpace(base)
	var nums []int64
	for _, a := range strings.Split(strings.TrimSuffix(args, ")"), ",") {
		if n, err := strconv.ParseInt(strings.TrimSpace(strings.Fields(a + " x")[0]), 10, 64); err == nil {
			nums = append(nums, n)
		}
	}
	base = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(base, " unsigned"), " signed"))
	c := typeClass{name: base}
	switch base {
	case "tinyint", "int1":
		c.family, c.size = "int", 8
	case "smallint", "int2", "smallserial":
		c.family, c.size = "int", 16
	case "mediumint":
		c.family, c.size = "int", 24
	case "int", "integer", "int4", "serial":
		c.family, c.size = "int", 32
	case "bigint", "int8", "bigserial":
		c.family, c.size = "int", 64
	case "real", "float4", "float":
		c.family, c.size = "float", 32
	case "double", "double precision", "float8":
		c.family, c.size = "float", 64
	case "numeric", "decimal":
		c.family = "numeric"
		if len(nums) > 0 {
			c.size = nums[0]
		}
		if len(nums) > 1 {
			c.scale = nums[1]
		}
	case "char", "character", "nchar", "varchar", "character varying", "nvarchar", "varchar2":
		c.family = "text"
		if len(nums) > 0 {
			c.size = nums[0]
		}
	case "text", "clob", "longtext":
		c.family = "text"
	case "tinytext":
		c.family, c.size = "text", 255
	case "mediumtext":
		c.family, c.size = "text", 16777215
	case "timestamp", "timestamptz", "timestamp with time zone", "timestamp without time zone", "datetime", "date":
		c.family = "time"
	default:
		c.family = "other"
	}
	return c
}

// narrowing explains why changing a column from old to new type can lose
// values, or returns "" when it cannot.
func narrowing(old, new string, known bool) string {
	if !known || old == "" {
		return "to " + new + " (no earlier migration defines the column, so it cannot be shown to be widening)"
	}
	if old == new {
		return ""
	}
	o, n := classify(old), classify(new)
	ok := false
	switch {
	case o.family == "int" && n.family == "int":
		ok = n.size >= o.size
	case o.family == "float" && n.family == "float":
		ok = n.size >= o.size
	case o.family == "text" && n.family == "text":
		ok = n.size == 0 || (o.size != 0 && n.size >= o.size)
	case o.family == "numeric" && n.family == "numeric":
		ok = n.size == 0 || (o.size != 0 && n.size-n.scale >= o.size-o.scale && n.scale >= o.scale)
	case o.family == "int" && n.family == "numeric":
		digits := map[int64]int64{8: 3, 16: 5, 24: 8, 32: 10, 64: 19}[o.size]
		ok = n.size == 0 || n.size-n.scale >= digits
	case n.family == "text" && n.size == 0:
		// Every value has a text form.
		ok = true
	case o.family == "time" && n.family == "time":
		ok = o.name == "date" || n.name != "date"
	}
	if ok {
		return ""
	}
	return "from " + old + " to " + new + " narrows it"
}
