package runbook

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/printable"
)

// Titles are the runbook's section titles, by pattern.
var Titles = map[string]string{
	"flip":      "Flip: the new pool fails",
	"flag":      "Flag: a flag's cohort fails",
	"config":    "Config: a service's new configuration is bad",
	"migration": "Migration: a migration broke the application",
	"release":   "Release: roll back everything a release changed",
}

// Markdown writes the runbook: the state it was generated from, then for
// each pattern how to tell it is needed, the exact commands with their
// curl equivalents, how to verify, and the last drill.
func Markdown(b Book) string {
	d := b.Deployment
	p := b.Params()
	var w strings.Builder
	name := code(d.Name)
	fmt.Fprintf(&w, "# Runbook: %s\n\n", text(d.Name))
	fmt.Fprintf(&w, "Generated %s from the admin API at %s, deployment version %d. The commands are exact for this state: "+
		"regenerate with `switchback runbook %s` after a change. They read the admin API's token from `$SWITCHBACK_TOKEN`; "+
		"each change takes a reason, recorded with the version it writes.\n\n",
		b.Generated.Format(time.RFC3339), text(b.Admin), d.Version, d.Name)

	w.WriteString("| pool | weight | release | upstreams |\n| --- | --- | --- | --- |\n")
	for _, pool := range sortedKeys(d.Pools) {
		retained := ""
		if _, ok := d.Retained[pool]; ok {
			retained = " (rollback target)"
		}
		fmt.Fprintf(&w, "| %s%s | %s%% | %s | %s |\n", code(pool), retained, num(d.Weights[pool]), text(cmpOr(d.Pools[pool].Release, "-")), text(strings.Join(d.Pools[pool].Upstreams, ", ")))
	}
	if len(d.Flags) > 0 {
		w.WriteString("\n| flag | percent |\n| --- | --- |\n")
		for _, f := range sortedKeys(d.Flags) {
			fmt.Fprintf(&w, "| %s | %s%% |\n", code(f), num(d.Flags[f].Percent))
		}
	}
	if d.Guard != nil {
		w.WriteString("\nA guard watches this deployment: it moves traffic off a failing pool and turns a failing flag off on its own " +
			"(`switchback_guard_fallbacks_total{deployment=\"" + d.Name + "\"}` counts it). The commands below are for when it has not, or is off.\n")
	} else {
		w.WriteString("\nNo guard watches this deployment: nothing falls back on its own, every rollback below is by hand.\n")
	}

	for _, pattern := range Patterns {
		fmt.Fprintf(&w, "\n## %s\n\n", Titles[pattern])
		w.WriteString("**When it is needed.** " + needed(pattern, b, name) + "\n\n")
		w.WriteString("**Roll back.**")
		cmds := Rollback(pattern, p)
		if len(cmds) == 0 {
			w.WriteString(" " + nothing(pattern, b) + "\n\n")
		} else {
			w.WriteString("\n\n")
			for i, c := range cmds {
				fmt.Fprintf(&w, "%d. %s\n\n   ```sh\n   %s\n   ```\n\n", i+1, text(c.Explain), hidePassword(c.Shell(), p.Database))
				if c.Curl != "" {
					fmt.Fprintf(&w, "   With curl:\n\n   ```sh\n   %s\n   ```\n\n", c.Curl)
				}
			}
		}
		w.WriteString("**Verify.** " + verify(pattern, b, p, name) + "\n\n")
		w.WriteString("**Last drill.** " + lastDrill(pattern, b) + "\n")
	}
	return w.String()
}

func needed(pattern string, b Book, name string) string {
	dep := b.Deployment.Name // a valid name needs no escaping in a code span
	switch pattern {
	case "flip":
		return "`switchback triage " + dep + "` names a failing pool; `switchback_guard_breaching{deployment=\"" + dep + "\",kind=\"pool\"} == 1`; " +
			"or the new pool's error ratio, `rate(switchback_request_errors_total{deployment=\"" + dep + "\"}[5m]) / rate(switchback_requests_total{deployment=\"" + dep + "\"}[5m])` by pool, " +
			"is above the previous pool's."
	case "flag":
		return "`switchback triage " + dep + "` names a failing flag; `switchback_guard_breaching{deployment=\"" + dep + "\",kind=\"flag\"} == 1`; " +
			"or the flag's cohort fails more than the others: `rate(switchback_flag_request_errors_total{deployment=\"" + dep + "\",cohort=\"on\"}[5m]) / rate(switchback_flag_requests_total{deployment=\"" + dep + "\",cohort=\"on\"}[5m])` " +
			"above the same for `cohort=\"off\"`."
	case "config":
		return "errors or latency of " + name + " rise right after a service's new configuration version: `switchback config history SERVICE` shows when each version was written, " +
			"`switchback config diff SERVICE` what the last one changed, and `switchback_service_config_versions_total{service=\"SERVICE\"}` when it was written through this admin API."
	case "migration":
		return "errors start right after a migration (SQL errors naming a table or column), or `switchback migrate status` shows a migration half-applied. " +
			"No guard applies to a migration: the guard watches requests through the gateway, not schemas, and no fallback moves a schema."
	case "release":
		return "more than one of the above began with a release, or the release as a whole must go: `switchback release show ID` shows what it changed. " +
			"The release rollback undoes its flags, then its traffic, then its configuration, then its schema, in that order."
	}
	return ""
}

func nothing(pattern string, b Book) string {
	switch pattern {
	case "flag":
		return "No flag of this deployment is on for anyone: there is nothing to turn off."
	case "config":
		return "No service has a configuration change to undo (every service is at its first version)."
	case "migration":
		switch {
		case b.DatabaseError != "":
			return "The database could not be read: " + text(b.DatabaseError) + "."
		case b.DatabaseName != "":
			return "No migration is applied to database " + code(b.DatabaseName) + ": there is nothing to roll back."
		case b.Database == "" && len(b.Databases) > 0:
			names := make([]string, len(b.Databases))
			for i, n := range b.Databases {
				names[i] = code(n)
			}
			return "No database was given. The gateway knows " + strings.Join(names, ", ") + ": `switchback runbook " + b.Deployment.Name +
				" --database NAME --config Caddyfile` prints the commands for one, read from the gateway's Caddyfile."
		case b.Database == "":
			return "No database was given: `switchback runbook " + b.Deployment.Name + " --database NAME --config Caddyfile` (a database of the gateway's) " +
				"or `--db URL --dir DIR` prints the commands for one."
		}
		return "No migration is applied to " + text(migrate.Redact(b.Database)) + ": there is nothing to roll back."
	case "release":
		if b.ReleaseError != "" {
			return "Releases could not be read: " + text(b.ReleaseError) + "."
		}
		return "This deployment has no release to roll back."
	}
	return "There is nothing to roll back."
}

func verify(pattern string, b Book, p Params, name string) string {
	dep := b.Deployment.Name
	switch pattern {
	case "flip":
		pool := "the previous pool"
		if p.Pool != "" {
			pool = code(p.Pool)
		}
		return "`switchback status " + dep + "` shows " + pool + " at 100% and every instance at the version the rollback wrote; `switchback triage " + dep + "` names no failing pool; " +
			"the error ratio above is back to what it was before the change."
	case "flag":
		return "`switchback status " + dep + "` shows the flag at 0%; `switchback_flag_requests_total{deployment=\"" + dep + "\",cohort=\"on\"}` stops growing; `switchback triage " + dep + "` names no failing flag."
	case "config":
		return "`switchback config history SERVICE` shows the rollback as the newest version, `switchback config diff SERVICE` shows the bad change reversed, " +
			"and every watcher has it (`switchback config get SERVICE` is what they receive)."
	case "migration":
		db := ""
		switch {
		case b.DatabaseName != "":
			db = " --database " + b.DatabaseName + " --config " + shellQuote(b.Config)
		case b.Database != "":
			db = " --db " + dbArg(b.Database) + " --dir " + shellQuote(b.MigrationsDir)
		}
		s := "`switchback migrate status" + db + "` shows "
		if p.Database != "" || p.DatabaseName != "" {
			s += "version " + strconv.FormatInt(p.DownTo, 10) + " as the newest applied"
		} else {
			s += "the version you rolled back to as the newest applied"
		}
		if len(p.Snapshots) > 0 {
			s += "; the restore answered with the number of rows it put back"
		}
		return s + "; the application's errors stop."
	case "release":
		id := "ID"
		if b.Release != nil {
			id = shellQuote(b.Release.ID)
		}
		return "`switchback release show " + id + "` shows the release rolled_back with every step done; a step that failed says what to do."
	}
	return ""
}

// lastDrill describes the newest drill of pattern.
func lastDrill(pattern string, b Book) string {
	r, ok := b.Drills[pattern]
	if !ok {
		if b.DrillsError != "" {
			return "never drilled, as far as this gateway knows (" + text(b.DrillsError) + "). `switchback drill " + pattern + "` runs one."
		}
		return "never drilled. `switchback drill " + pattern + "` runs one."
	}
	var s string
	switch {
	case r.Passed && r.Flagged:
		s = "passed but flagged (over " + ms(r.FlagAfterMS) + ")"
	case r.Passed:
		s = "passed"
	default:
		s = "FAILED"
	}
	s += " on " + r.Started.UTC().Format(time.RFC3339)
	switch {
	case r.Target == "sandbox" || r.Target == "":
		s += " in the sandbox"
	case r.Deployment != "":
		s += " against " + code(r.Deployment) + " at " + text(r.Target)
	default:
		s += " against " + text(r.Target)
	}
	s += fmt.Sprintf(" (%s trigger", r.Trigger)
	if r.Durations.Recovered != nil {
		s += ", trigger to recovered " + ms(*r.Durations.Recovered)
	}
	s += fmt.Sprintf(", %d of %d requests failed)", r.FailedRequests, r.Requests)
	if !r.Passed {
		if r.Error != "" {
			s += ": " + text(r.Error)
		}
		parts := make([]string, 0, len(r.Diff))
		for _, d := range r.Diff {
			parts = append(parts, d.Part)
		}
		if len(parts) > 0 {
			s += "; the state after differed in " + text(strings.Join(parts, ", "))
		}
	}
	return s + "."
}

// dbArg is a --db value as the runbook prints it: a URL with a password
// is read from $DATABASE_URL instead, so the runbook can be shared.
func dbArg(db string) string {
	if migrate.Redact(db) != db {
		return `"$DATABASE_URL"`
	}
	return shellQuote(db)
}

func hidePassword(line, db string) string {
	if db == "" {
		return line
	}
	return strings.ReplaceAll(line, "--db "+shellQuote(db), "--db "+dbArg(db))
}

func ms(v int64) string {
	return strconv.FormatFloat(float64(v)/1000, 'f', -1, 64) + " s"
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// text makes a value from the API safe in Markdown prose: one line,
// terminal controls escaped, and the characters Markdown acts on
// backslash-escaped.
func text(s string) string {
	s = printable.Escape(strings.Join(strings.Fields(s), " "))
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "<", `\<`, ">", `\>`, "|", `\|`, "#", `\#`)
	return r.Replace(s)
}

// code puts a name in a code span.
func code(s string) string {
	s = printable.Escape(strings.Join(strings.Fields(s), " "))
	if strings.Contains(s, "`") {
		return text(s)
	}
	return "`" + s + "`"
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
