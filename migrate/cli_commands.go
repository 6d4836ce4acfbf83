package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/a8e2c47e/switchback/cmdline"
)

func (c *cli) create(pos []string) (any, error) {
	if err := c.args("create", pos, "NAME"); err != nil {
		return nil, err
	}
	path, err := Create(c.dir, pos[0], c.phase, c.now)
	if err != nil {
		return nil, &cmdline.UsageError{Msg: err.Error()}
	}
	if !c.json {
		fmt.Fprintf(c.stdout, "created %s (%s)\n", path, c.phase)
	}
	return map[string]any{"path": path, "phase": c.phase}, nil
}

func (c *cli) upDown(ctx context.Context, cmd string, pos []string) (any, error) {
	if err := c.args(cmd, pos); err != nil {
		return nil, err
	}
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if c.toSet {
		zero := "roll back everything"
		if cmd == "up" {
			zero = "" // up without --to applies everything
		}
		if err := m.checkVersion("--to", c.to, zero); err != nil {
			return nil, &cmdline.UsageError{Msg: err.Error()}
		}
	}
	var rep *Report
	switch {
	case cmd == "up":
		rep, err = m.Up(ctx, c.to)
	case c.toSet:
		rep, err = m.Down(ctx, c.to)
	default:
		rep, err = m.Down(ctx, -1)
	}
	if !c.json && rep != nil {
		c.printReport(rep, err)
	}
	if rep == nil {
		return nil, err
	}
	return rep, err
}

func (c *cli) printReport(rep *Report, err error) {
	for _, in := range rep.Cleared {
		fmt.Fprintf(c.stdout, "note: %s (version %d) was interrupted during %s at %s and left nothing behind; cleared\n",
			in.File, in.Version, in.Direction, in.StartedAt.Format(time.RFC3339))
	}
	for _, a := range rep.Applied {
		line := fmt.Sprintf("OK    %-4s %s (%s)", rep.Direction, a.File, a.Duration.Round(time.Millisecond))
		for _, s := range a.Snapshots {
			line += fmt.Sprintf("; snapshot %s: %d rows", s.Table, s.Rows)
			if s.Kept {
				line += " (kept from " + s.TakenAt.Format(time.RFC3339) + ", before an earlier attempt)"
			}
		}
		if a.Irreversible {
			if rep.Direction == "up" {
				line += "; IRREVERSIBLE: no Down section, applied because of --allow-irreversible"
			} else {
				line += "; IRREVERSIBLE: no Down section ran, so its changes remain; only the record that it was applied is gone (--allow-irreversible)"
			}
		}
		fmt.Fprintln(c.stdout, line)
	}
	if f := rep.Failed; f != nil {
		fmt.Fprintf(c.stdout, "FAIL  %-4s %s: %s\n", rep.Direction, f.File, f.Error)
		// What is true now differs by direction: a failed up leaves the
		// migration pending, a failed down leaves it applied.
		switch {
		case f.RolledBack && rep.Direction == "up":
			fmt.Fprintf(c.stdout, "      rolled back: nothing of %s remains; it is still pending\n", f.File)
		case f.RolledBack:
			fmt.Fprintf(c.stdout, "      the failed down was rolled back: %s is still applied and its schema is unchanged\n", f.File)
		case len(f.Left) == 0 && rep.Direction == "up":
			fmt.Fprintf(c.stdout, "      no schema change was left behind; %s is still pending\n", f.File)
		case len(f.Left) == 0:
			fmt.Fprintf(c.stdout, "      the failed down changed no schema: %s is still applied\n", f.File)
		default:
			fmt.Fprintf(c.stdout, "      NOT rolled back (no transactional DDL); changes left behind:\n")
			for _, l := range f.Left {
				fmt.Fprintf(c.stdout, "        %s\n", l)
			}
			fmt.Fprintf(c.stdout, "      the next run refuses to continue until the schema is repaired and `switchback migrate resolve %d` is run\n", f.Version)
		}
	}
	if len(rep.Applied) == 0 && rep.Failed == nil && err == nil {
		fmt.Fprintln(c.stdout, "nothing to do")
	}
	fmt.Fprintf(c.stdout, "database version: %d\n", rep.Version)
}

func (c *cli) status(ctx context.Context, pos []string) (any, error) {
	if err := c.args("status", pos); err != nil {
		return nil, err
	}
	m, err := c.open(ctx, WithReadOnly())
	if err != nil {
		return nil, err
	}
	defer m.Close()
	st, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	if !c.json {
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VERSION\tSTATE\tPHASE\tAPPLIED AT\tFILE")
		for _, s := range st {
			at := "-"
			if !s.AppliedAt.IsZero() {
				at = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			file := s.File
			if len(s.Snapshot) > 0 {
				file += " (snapshot " + strings.Join(s.Snapshot, ", ") + ")"
			}
			if s.Irreversible {
				file += " (irreversible: no Down section)"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", s.Version, s.State, s.Phase, at, file)
		}
		w.Flush()
	}
	return map[string]any{"migrations": st}, nil
}

func (c *cli) verify(ctx context.Context, pos []string) (any, error) {
	if err := c.args("verify", pos); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.dir); err != nil {
		return nil, cmdline.Usagef("--dir %q: %v; accepted: a directory of NUMBER_name.sql migrations", c.dir, errors.Unwrap(err))
	}
	rep, err := Verify(ctx, c.db, os.DirFS(c.dir))
	if errors.Is(err, ErrNoMigrations) {
		return nil, cmdline.Usagef("--dir %q: %v", c.dir, err)
	}
	if rep == nil {
		return nil, err
	}
	if !c.json {
		failed := map[int64]VerifyFailure{}
		for _, f := range rep.Failures {
			failed[f.Version] = f
		}
		for _, r := range rep.Checked {
			if f, ok := failed[r.Version]; ok {
				fmt.Fprintf(c.stdout, "FAIL  %s\n", f)
				continue
			}
			fmt.Fprintf(c.stdout, "ok    %s\n", r.File)
		}
		fmt.Fprintf(c.stdout, "verify: %d of %d migrations round-trip on a scratch %s database (%s)\n",
			len(rep.Checked)-len(rep.Failures), len(rep.Checked), rep.Dialect, rep.Duration.Round(time.Millisecond))
	}
	return rep, err
}

func (c *cli) lint(pos []string) (any, error) {
	if err := c.args("lint", pos); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.dir); err != nil {
		return nil, cmdline.Usagef("--dir %q: %v; accepted: a directory of NUMBER_name.sql migrations", c.dir, errors.Unwrap(err))
	}
	opts := []Option{WithNow(func() time.Time { return c.now })}
	for _, path := range c.usage {
		f, err := os.Open(path)
		if err != nil {
			return nil, cmdline.Usagef("--usage %q: %v; accepted: a readable query log file", path, errors.Unwrap(err))
		}
		defer f.Close()
		opts = append(opts, WithUsage(path, f))
	}
	rep, err := Lint(os.DirFS(c.dir), opts...)
	if errors.Is(err, ErrNoMigrations) {
		return nil, cmdline.Usagef("--dir %q: %v", c.dir, err)
	}
	if rep == nil {
		return nil, err
	}
	if !c.json {
		for _, f := range rep.Findings {
			fmt.Fprintln(c.stdout, f)
		}
		if u := rep.Usage; u != nil {
			fmt.Fprintf(c.stdout, "usage logs: %d entries from %s to %s\n", u.Entries, u.First.Format(time.RFC3339), u.Last.Format(time.RFC3339))
		}
		fmt.Fprintf(c.stdout, "lint: %d finding(s) in %d migrations\n", len(rep.Findings), rep.Migrations)
	}
	return rep, err
}

func (c *cli) snapshot(ctx context.Context, pos []string) (any, error) {
	if len(pos) == 0 {
		return nil, cmdline.Usagef("snapshot needs a subcommand; accepted: list, restore VERSION")
	}
	switch pos[0] {
	case "list":
		if err := c.args("snapshot list", pos[1:]); err != nil {
			return nil, err
		}
	case "restore":
		if err := c.args("snapshot restore", pos[1:], "VERSION"); err != nil {
			return nil, err
		}
	default:
		return nil, cmdline.Usagef("snapshot %q: accepted: list, restore VERSION", pos[0])
	}
	var v int64
	if pos[0] == "restore" {
		var err error
		if v, err = c.version(pos[1], "snapshot restore"); err != nil {
			return nil, err
		}
	}
	var extra []Option
	if pos[0] == "list" {
		extra = append(extra, WithReadOnly())
	}
	m, err := c.open(ctx, extra...)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if pos[0] == "list" {
		snaps, err := m.Snapshots(ctx)
		if err != nil {
			return nil, err
		}
		if !c.json {
			printSnapshots(c.stdout, snaps)
		}
		return map[string]any{"snapshots": snaps}, nil
	}
	began := time.Now()
	restored, err := m.RestoreSnapshot(ctx, v)
	if err != nil {
		return nil, err
	}
	if !c.json {
		for _, r := range restored {
			fmt.Fprintf(c.stdout, "restored %s: %d rows\n", r.Table, r.Rows)
		}
		fmt.Fprintf(c.stdout, "snapshot %d restored in %s\n", v, time.Since(began).Round(time.Millisecond))
	}
	return map[string]any{"version": v, "restored": restored}, nil
}

// printSnapshots lists snaps as a table. NEXT UP says what the next up of
// the version does with the copy (see takeSnapshot).
func printSnapshots(out io.Writer, snaps []Snapshot) {
	if len(snaps) == 0 {
		fmt.Fprintln(out, "no snapshots")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tTABLE\tROWS\tTAKEN AT\tNEXT UP\tCOPY")
	for _, s := range snaps {
		next := "keeps it"
		if !s.RevertedAt.IsZero() {
			next = "replaces it (down at " + s.RevertedAt.Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%s\n", s.Version, s.Table, s.Rows, s.TakenAt.Format(time.RFC3339), next, s.Copy)
	}
	w.Flush()
	fmt.Fprintln(out, "an up replaces a version's snapshot only after a down of that version; a retried up keeps the copy from before the failed one")
}

func (c *cli) resolve(ctx context.Context, pos []string) (any, error) {
	if err := c.args("resolve", pos, "VERSION"); err != nil {
		return nil, err
	}
	v, err := c.version(pos[0], "resolve")
	if err != nil {
		return nil, err
	}
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if err := m.Resolve(ctx, v); err != nil {
		return nil, err
	}
	if !c.json {
		fmt.Fprintf(c.stdout, "resolved %d: the next run continues from the recorded version\n", v)
	}
	return map[string]any{"resolved": v}, nil
}
