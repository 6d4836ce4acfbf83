package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
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
func Lint(fsys fs.FS, opts ...Option) (*LintReport, error) {
	cfg, err := newConfig(useLint, opts)
	if err != nil {
		return nil, err
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
