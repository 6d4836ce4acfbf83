package drill

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// verdict is a result's one word: passed, FAILED, FLAGGED, n/a.
func verdict(r Result) string {
	switch {
	case r.NotApplicable != "":
		return "n/a"
	case !r.Passed:
		return "FAILED"
	case r.Flagged:
		return "FLAGGED"
	}
	return "passed"
}

func fmtMs(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmtDur(*p)
}

func fmtDur(ms int64) string {
	if ms < 1000 {
		return fmt.Sprintf("%d ms", ms)
	}
	return fmt.Sprintf("%.2f s", float64(ms)/1000)
}

func stateWord(r Result) string {
	switch {
	case r.NotApplicable != "":
		return "-"
	case r.StateEqual:
		return "equal"
	case len(r.Diff) > 0:
		return "DIFFERS"
	}
	return "not compared"
}

// WriteTable prints results for people: one row per drill, then what
// failed and why, with the state's differences.
func WriteTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATTERN\tTRIGGER\tRESULT\tDETECTED\tDECIDED\tRECOVERED\tFAILED REQUESTS\tSTATE\tTOTAL")
	for _, r := range results {
		if r.NotApplicable != "" {
			fmt.Fprintf(tw, "%s\t%s\tn/a\t-\t-\t-\t-\t-\tnot applicable: %s\n", r.Pattern, r.Trigger, r.NotApplicable)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d of %d\t%s\t%s\n", r.Pattern, r.Trigger, verdict(r),
			fmtMs(r.Durations.Detected), fmtMs(r.Durations.Decided), fmtMs(r.Durations.Recovered),
			r.FailedRequests, r.Requests, stateWord(r), fmtDur(r.Durations.Total))
	}
	tw.Flush()
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "\n%s/%s: note: %s\n", r.Pattern, r.Trigger, n)
		}
		if r.OK() || r.NotApplicable != "" {
			continue
		}
		fmt.Fprintf(w, "\n%s/%s %s", r.Pattern, r.Trigger, verdict(r))
		if r.Flagged {
			fmt.Fprintf(w, ": trigger to recovered %s, over the %s limit", fmtMs(r.Durations.Recovered), fmtDur(r.FlagAfterMS))
		}
		if r.Error != "" {
			fmt.Fprintf(w, ": %s", r.Error)
		}
		fmt.Fprintln(w)
		for _, d := range r.Diff {
			fmt.Fprintf(w, "  %s, before (-) and after (+):\n", d.Part)
			for _, l := range d.Lines {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
		for _, s := range r.Steps {
			if s.Error != "" {
				fmt.Fprintf(w, "  step %q failed after %s: %s\n", s.Name, fmtDur(s.DurationMS), s.Error)
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Durations are from the trigger (manual: the rollback command run; guard: the fault injected) as clients saw them;")
	fmt.Fprintln(w, "recovered is the first of 20 consecutive good answers from the previous state.")
}

// WriteHistory prints stored results, newest first.
func WriteHistory(w io.Writer, results []Result) {
	if len(results) == 0 {
		fmt.Fprintln(w, "no drills recorded")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tPATTERN\tTRIGGER\tRESULT\tRECOVERED\tFAILED REQUESTS\tTARGET\tDEPLOYMENT")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d of %d\t%s\t%s\n", r.Started.UTC().Format(time.DateTime+"Z"), r.Pattern, r.Trigger,
			verdict(r), fmtMs(r.Durations.Recovered), r.FailedRequests, r.Requests, r.Target, r.Deployment)
	}
	tw.Flush()
}

// oneLine flattens s for a table cell.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
