// Package runbook holds the documented rollback of each pattern Switchback
// rolls back (a traffic flip, a feature flag, a service's configuration, a
// migration, a release): the exact commands an on-call engineer runs, with
// their curl equivalents against the admin API, and the Markdown runbook
// generated from a deployment's live configuration.
//
// The drills run these same commands, so what the runbook prints is what
// was last proven to work.
package runbook

import (
	"cmp"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/a8e2c47e/switchback/admin"
)

// Patterns are the patterns with a rollback, in the order the runbook
// lists them.
var Patterns = []string{"flip", "flag", "config", "migration", "release"}

// Params are what the commands of a rollback need to know; each pattern
// reads only its own fields, and a pattern whose fields are empty has no
// commands.
type Params struct {
	// Deployment is the deployment rolled back (flip, flag).
	Deployment string
	// Admin is the admin API's base URL; empty means admin.DefaultAdminURL.
	// The token is never printed: the CLI reads $SWITCHBACK_TOKEN and the
	// curl commands expand it.
	Admin string
	// Reason is recorded with every change; empty means "runbook: roll
	// back PATTERN".
	Reason string

	// Pool is the previous pool, the one that gets all traffic back
	// (flip). Pools are all the deployment's pools, so that every other
	// pool gets 0; without them, or without Pool, the rollback is
	// `switchback flip`, which needs one pool to hold all traffic.
	Pool  string
	Pools []string

	// Flags are the flags whose cohort is turned off (flag).
	Flags []string

	// Services maps a service to the version to restore; 0 undoes the
	// last change (config).
	Services map[string]uint64

	// Database is the migrate --db URL, MigrationsDir its --dir; DownTo
	// is the version to roll back to and Snapshots the versions above it
	// whose data snapshots are restored (migration). Each snapshot is
	// restored right after rolling down to the version it was taken at,
	// when the table has exactly the columns it copied.
	Database      string
	MigrationsDir string
	DownTo        int64
	Snapshots     []int64
	// DatabaseName, when set, replaces Database and MigrationsDir: the
	// gateway's `database NAME DSN { migrations DIR }` line, which
	// `switchback migrate --database NAME --config Config` reads from the
	// gateway's Caddyfile (Config; empty means ./Caddyfile), so no
	// address is printed.
	DatabaseName string
	Config       string

	// Release is a release's id or name, RestoreData whether its rollback
	// restores the data snapshots too (release).
	Release     string
	RestoreData bool
}

// Command is one step of a rollback.
type Command struct {
	// Args are the switchback command line after the program name, as
	// admin.RunCLI and, after "migrate", migrate.Main take them.
	Args []string
	// Curl is the same call to the admin API as a shell command line;
	// empty when the command has none (migrations talk to the database).
	Curl string
	// Explain says what the step does and why it comes at this point.
	Explain string
}

// Shell returns the command as it is typed, quoted for a POSIX shell.
func (c Command) Shell() string {
	parts := make([]string, 0, len(c.Args)+1)
	parts = append(parts, "switchback")
	for _, a := range c.Args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

// Rollback returns the commands that roll back pattern (one of Patterns)
// in the order they run; nil for an unknown pattern or one whose Params
// are empty.
func Rollback(pattern string, p Params) []Command {
	b := builder{p: p, admin: strings.TrimRight(cmp.Or(p.Admin, admin.DefaultAdminURL), "/"), reason: cmp.Or(p.Reason, "runbook: roll back "+pattern)}
	switch pattern {
	case "flip":
		return b.flip()
	case "flag":
		return b.flag()
	case "config":
		return b.config()
	case "migration":
		return b.migration()
	case "release":
		return b.release()
	}
	return nil
}

type builder struct {
	p      Params
	admin  string
	reason string
}

func (b builder) flip() []Command {
	d := b.p.Deployment
	if d == "" {
		return nil
	}
	path := "/api/v1/deployments/" + url.PathEscape(d)
	if b.p.Pool == "" || !slices.Contains(b.p.Pools, b.p.Pool) {
		return []Command{{
			Args: b.adminArgs("flip", d),
			Curl: b.curl("POST", path+"/flip", struct {
				Reason string `json:"reason"`
			}{b.reason}),
			Explain: "Send all traffic to the pool that has none now; only when one pool holds all of it.",
		}}
	}
	weights := map[string]float64{}
	args := []string{"weights", d}
	for _, pool := range sorted(b.p.Pools) {
		w := 0.0
		if pool == b.p.Pool {
			w = 100
		}
		weights[pool] = w
		args = append(args, pool+"="+strconv.FormatFloat(w, 'f', -1, 64))
	}
	return []Command{{
		Args: b.adminArgs(args...),
		Curl: b.curl("PUT", path+"/weights", struct {
			Weights map[string]float64 `json:"weights"`
			Reason  string             `json:"reason"`
		}{weights, b.reason}),
		Explain: "Send all traffic back to pool " + b.p.Pool + ", from any split; the other pools keep their upstreams for a retry.",
	}}
}

func (b builder) flag() []Command {
	d := b.p.Deployment
	if d == "" {
		return nil
	}
	var out []Command
	for _, f := range sorted(b.p.Flags) {
		zero := 0.0
		out = append(out, Command{
			Args: b.adminArgs("flag", d, f, "0"),
			Curl: b.curl("PUT", "/api/v1/deployments/"+url.PathEscape(d)+"/flags/"+url.PathEscape(f), struct {
				Percent *float64 `json:"percent"`
				Reason  string   `json:"reason"`
			}{&zero, b.reason}),
			Explain: "Turn flag " + f + " off for everyone; the flag stays defined, so its rollout can resume later.",
		})
	}
	return out
}

func (b builder) config() []Command {
	names := make([]string, 0, len(b.p.Services))
	for s := range b.p.Services {
		names = append(names, s)
	}
	var out []Command
	for _, s := range sorted(names) {
		path := "/api/v1/services/" + url.PathEscape(s)
		if v := b.p.Services[s]; v != 0 {
			out = append(out, Command{
				Args: b.adminArgs("config", "restore", s, strconv.FormatUint(v, 10)),
				Curl: b.curl("POST", path+"/restore", struct {
					Version uint64 `json:"version"`
					Reason  string `json:"reason"`
				}{v, b.reason}),
				Explain: "Make version " + strconv.FormatUint(v, 10) + " of service " + s + " current again, as a new version every watcher receives.",
			})
			continue
		}
		out = append(out, Command{
			Args: b.adminArgs("config", "rollback", s),
			Curl: b.curl("POST", path+"/rollback", struct {
				Reason string `json:"reason"`
			}{b.reason}),
			Explain: "Undo the last change to service " + s + ", as a new version every watcher receives.",
		})
	}
	return out
}

func (b builder) migration() []Command {
	if b.p.Database == "" && b.p.DatabaseName == "" {
		return nil
	}
	db := []string{"--db", b.p.Database, "--dir", cmp.Or(b.p.MigrationsDir, "./migrations")}
	if b.p.DatabaseName != "" {
		db = []string{"--database", b.p.DatabaseName, "--config", cmp.Or(b.p.Config, "./Caddyfile")}
	}
	down := func(to int64, why string) Command {
		return Command{Args: append([]string{"migrate", "down", "--to", strconv.FormatInt(to, 10)}, db...), Explain: why}
	}
	// A snapshot's rows fit the schema it was taken from, so each is put
	// back between the downs, newest first, at its own version.
	snaps := slices.Clone(b.p.Snapshots)
	slices.Sort(snaps)
	slices.Reverse(snaps)
	var out []Command
	at := int64(-1)
	for _, v := range slices.Compact(snaps) {
		if v <= b.p.DownTo {
			continue
		}
		s := strconv.FormatInt(v, 10)
		out = append(out,
			down(v-1, "Run the down of migration "+s+" and of every later one."),
			Command{Args: append([]string{"migrate", "snapshot", "restore", s}, db...),
				Explain: "Put back the rows snapshotted before migration " + s + "'s up, in one transaction."})
		at = v - 1
	}
	if at != b.p.DownTo {
		out = append(out, down(b.p.DownTo, "Roll the schema back to version "+strconv.FormatInt(b.p.DownTo, 10)+"."))
	}
	return out
}

func (b builder) release() []Command {
	if b.p.Release == "" {
		return nil
	}
	args := []string{"release", "rollback", b.p.Release}
	if b.p.RestoreData {
		args = append(args, "--restore-data")
	}
	return []Command{{
		Args: b.adminArgs(args...),
		Curl: b.curl("POST", "/api/v1/releases/"+url.PathEscape(b.p.Release)+"/rollback", struct {
			RestoreData bool   `json:"restore_data,omitempty"`
			Reason      string `json:"reason"`
		}{b.p.RestoreData, b.reason}),
		Explain: "Roll the whole release back, flags, traffic, configuration, then schema, one recorded step at a time by the elected instance.",
	}}
}

// adminArgs adds the options every admin command takes.
func (b builder) adminArgs(args ...string) []string {
	return append(args, "--reason", b.reason, "--admin", b.admin)
}

// curl renders one admin API call; -f makes an error answer a failed
// command, as the CLI's exit status does.
func (b builder) curl(method, path string, body any) string {
	data, err := json.Marshal(body)
	if err != nil {
		panic("runbook: request body: " + err.Error()) // the bodies are structs of strings and numbers
	}
	return "curl -fsS -X " + method + " " + shellQuote(b.admin+path) +
		` -H "Authorization: Bearer $SWITCHBACK_TOKEN" -H 'Content-Type: application/json' -d ` + shellQuote(string(data))
}

// shellQuote leaves words of safe characters as they are and puts
// anything else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
