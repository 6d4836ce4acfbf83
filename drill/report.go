package drill

import (
	"bytes"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WriteReport writes dir/report.md and dir/report.html: the summary, each
// drill's steps and differences, and in the HTML a timeline of each drill
// drawn as inline SVG (no script, nothing fetched from elsewhere).
func WriteReport(dir string, results []Result, flagAfter time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var md bytes.Buffer
	writeMarkdown(&md, results, flagAfter)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), md.Bytes(), 0o644); err != nil {
		return err
	}
	var h bytes.Buffer
	if err := reportHTML.Execute(&h, htmlReport(results, flagAfter)); err != nil {
		return fmt.Errorf("report.html: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "report.html"), h.Bytes(), 0o644)
}

func mdCell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }

func writeMarkdown(b *bytes.Buffer, results []Result, flagAfter time.Duration) {
	fmt.Fprintf(b, "# Switchback drill report\n\n")
	if len(results) > 0 {
		fmt.Fprintf(b, "Started %s against %s. Drills over %s are flagged.\n\n", results[0].Started.UTC().Format(time.RFC3339), results[0].Target, flagAfter)
	}
	fmt.Fprintln(b, "| Pattern | Trigger | Result | Detected | Decided | Recovered | Failed requests | State | Total |")
	fmt.Fprintln(b, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		if r.NotApplicable != "" {
			fmt.Fprintf(b, "| %s | %s | not applicable: %s | | | | | | |\n", r.Pattern, r.Trigger, mdCell(r.NotApplicable))
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %d of %d | %s | %s |\n", r.Pattern, r.Trigger, verdict(r),
			fmtMs(r.Durations.Detected), fmtMs(r.Durations.Decided), fmtMs(r.Durations.Recovered),
			r.FailedRequests, r.Requests, stateWord(r), fmtDur(r.Durations.Total))
	}
	fmt.Fprintln(b, "\nDurations are from the trigger (manual: the rollback command run; guard: the fault injected), as clients saw them; recovered is the first of 20 consecutive good answers from the previous state.")
	for _, r := range results {
		if r.NotApplicable != "" {
			continue
		}
		fmt.Fprintf(b, "\n## %s, %s trigger: %s\n\n", r.Pattern, r.Trigger, verdict(r))
		if r.Error != "" {
			fmt.Fprintf(b, "%s\n\n", r.Error)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(b, "Note: %s\n\n", n)
		}
		fmt.Fprintln(b, "| Step | Start | Duration | Command | Error |")
		fmt.Fprintln(b, "|---|---|---|---|---|")
		for _, s := range r.Steps {
			cmd := ""
			if s.Command != "" {
				cmd = "`" + strings.ReplaceAll(s.Command, "`", "'") + "`"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", mdCell(s.Name), fmtDur(s.StartMS), fmtDur(s.DurationMS), cmd, mdCell(s.Error))
		}
		for _, d := range r.Diff {
			fmt.Fprintf(b, "\n%s, before (-) and after (+):\n\n```diff\n%s\n```\n", d.Part, strings.Join(d.Lines, "\n"))
		}
	}
}

// The timeline's geometry, in SVG user units.
const (
	tlWidth  = 900.0
	tlLabel  = 230.0
	tlRow    = 22.0
	tlTop    = 56.0
	tlBottom = 24.0
)

type htmlDrill struct {
	Result
	Verdict, Class, State         string
	Detected, Decided, Recovered  string
	Total                         string
	Height                        float64
	Bars                          []tlBar
	Marks                         []tlMark
	Ticks                         []tlTick
	Diff                          []htmlDiff
	Title, AxisY, PlotX, PlotEndX float64
}

type tlBar struct {
	Label, Title, Class string
	X, Y, W             float64
}

type tlMark struct {
	Label, Class string
	X, LabelY    float64
}

type tlTick struct {
	Label string
	X     float64
}

type htmlDiff struct {
	Part  string
	Lines []htmlLine
}

type htmlLine struct{ Text, Class string }

func htmlReport(results []Result, flagAfter time.Duration) any {
	var ds []htmlDrill
	for _, r := range results {
		d := htmlDrill{Result: r, Verdict: verdict(r), State: stateWord(r), Detected: fmtMs(r.Durations.Detected),
			Decided: fmtMs(r.Durations.Decided), Recovered: fmtMs(r.Durations.Recovered), Total: fmtDur(r.Durations.Total)}
		d.Class = map[string]string{"passed": "ok", "FAILED": "bad", "FLAGGED": "warn", "n/a": "na"}[d.Verdict]
		if r.NotApplicable == "" {
			timeline(&d)
		}
		for _, df := range r.Diff {
			hd := htmlDiff{Part: df.Part}
			for _, l := range df.Lines {
				c := ""
				switch {
				case strings.HasPrefix(l, "-"):
					c = "del"
				case strings.HasPrefix(l, "+"):
					c = "ins"
				}
				hd.Lines = append(hd.Lines, htmlLine{Text: l, Class: c})
			}
			d.Diff = append(d.Diff, hd)
		}
		ds = append(ds, d)
	}
	started := ""
	target := ""
	if len(results) > 0 {
		started, target = results[0].Started.UTC().Format(time.RFC3339), results[0].Target
	}
	return struct {
		Drills          []htmlDrill
		Started, Target string
		FlagAfter       string
	}{ds, started, target, flagAfter.String()}
}

// timeline lays out one drill: a bar per step on the drill's time axis,
// and vertical marks at the trigger and at detected, decided and
// recovered.
func timeline(d *htmlDrill) {
	r := d.Result
	span := max(r.Durations.Total, 1)
	for _, s := range r.Steps {
		span = max(span, s.StartMS+s.DurationMS)
	}
	plot := tlWidth - tlLabel - 20
	x := func(ms int64) float64 { return tlLabel + plot*float64(ms)/float64(span) }
	d.PlotX, d.PlotEndX = tlLabel, tlLabel+plot
	for i, s := range r.Steps {
		class := "step"
		switch {
		case s.Error != "":
			class = "step err"
		case s.Command != "":
			class = "step cmd"
		case s.Name == "wait for recovery":
			class = "step wait"
		}
		w := max(plot*float64(s.DurationMS)/float64(span), 1.5)
		title := fmt.Sprintf("%s: %s from %s", s.Name, fmtDur(s.DurationMS), fmtDur(s.StartMS))
		if s.Command != "" {
			title += "\n" + s.Command
		}
		d.Bars = append(d.Bars, tlBar{Label: truncate(s.Name, 34), Title: title, Class: class, X: x(s.StartMS), Y: tlTop + float64(i)*tlRow, W: w})
	}
	d.AxisY = tlTop + float64(len(r.Steps))*tlRow + 4
	d.Height = d.AxisY + tlBottom
	t0 := r.TriggerAtMS
	d.Marks = append(d.Marks, tlMark{Label: "trigger", Class: "m-trigger", X: x(t0)})
	for _, m := range []struct {
		label, class string
		v            *int64
	}{{"detected", "m-detected", r.Durations.Detected}, {"decided", "m-decided", r.Durations.Decided}, {"recovered", "m-recovered", r.Durations.Recovered}} {
		if m.v != nil {
			d.Marks = append(d.Marks, tlMark{Label: m.label + " +" + fmtDur(*m.v), Class: m.class, X: x(t0 + *m.v)})
		}
	}
	for i := range d.Marks {
		d.Marks[i].LabelY = 11 + float64(i)*12
	}
	step := niceStep(span)
	for ms := int64(0); ms <= span; ms += step {
		d.Ticks = append(d.Ticks, tlTick{Label: fmtDur(ms), X: x(ms)})
	}
}

// niceStep picks a tick interval giving 4 to 10 ticks.
func niceStep(span int64) int64 {
	for _, s := range []int64{10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000, 120000, 300000} {
		if span/s <= 10 {
			return s
		}
	}
	return 600000
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

var reportHTML = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Switchback drill report</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 960px; color: #1b1f24; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
th { background: #f6f8fa; }
.ok { color: #116329; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
.warn { color: #8a4b00; font-weight: 600; } .na { color: #57606a; }
code { font: 12px ui-monospace, monospace; background: #f6f8fa; padding: 0 .2rem; }
pre { font: 12px/1.4 ui-monospace, monospace; background: #f6f8fa; padding: .6rem; overflow-x: auto; }
.del { color: #b3261e; } .ins { color: #116329; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #1b1f24; }
svg .step { fill: #8c959f; } svg .cmd { fill: #0969da; } svg .wait { fill: #bf8700; } svg .err { fill: #b3261e; }
svg .axis { stroke: #57606a; } svg .grid { stroke: #d0d7de; }
svg .m-trigger { stroke: #1b1f24; } svg .m-detected { stroke: #8250df; } svg .m-decided { stroke: #0969da; } svg .m-recovered { stroke: #116329; }
svg line.mark { stroke-width: 2; stroke-dasharray: 4 3; }
.legend span { margin-right: 1rem; }
</style>
</head>
<body>
<h1>Switchback drill report</h1>
<p>Started {{.Started}} against <strong>{{.Target}}</strong>. Drills slower than {{.FlagAfter}} from trigger to recovered are flagged.
Durations are from the trigger (manual: the rollback command run; guard: the fault injected) as clients saw them;
recovered is the first of 20 consecutive good answers from the previous state.</p>
<table>
<thead><tr><th>Pattern</th><th>Trigger</th><th>Result</th><th>Detected</th><th>Decided</th><th>Recovered</th><th>Failed requests</th><th>State</th><th>Total</th></tr></thead>
<tbody>
{{range .Drills}}<tr>{{if .NotApplicable}}<td>{{.Pattern}}</td><td>{{.Trigger}}</td><td class="na" colspan="7">not applicable: {{.NotApplicable}}</td>{{else}}<td>{{.Pattern}}</td><td>{{.Trigger}}</td><td class="{{.Class}}">{{.Verdict}}</td><td>{{.Detected}}</td><td>{{.Decided}}</td><td>{{.Recovered}}</td><td>{{.FailedRequests}} of {{.Requests}}</td><td>{{.State}}</td><td>{{.Total}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{range .Drills}}{{if not .NotApplicable}}
<h2>{{.Pattern}}, {{.Trigger}} trigger: <span class="{{.Class}}">{{.Verdict}}</span></h2>
{{if .Error}}<p>{{.Error}}</p>{{end}}{{range .Notes}}<p>Note: {{.}}</p>{{end}}
<svg viewBox="0 0 900 {{.Height}}" width="900" height="{{.Height}}" role="img" aria-label="Timeline of the {{.Pattern}} drill with the {{.Trigger}} trigger">
{{$d := .}}{{range .Ticks}}<line class="grid" x1="{{.X}}" y1="50" x2="{{.X}}" y2="{{$d.AxisY}}"/><text x="{{.X}}" y="{{$d.AxisY}}" dy="14" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="{{.PlotX}}" y1="{{.AxisY}}" x2="{{.PlotEndX}}" y2="{{.AxisY}}"/>
{{range .Bars}}<text x="4" y="{{.Y}}" dy="14">{{.Label}}</text><rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="16" rx="2"><title>{{.Title}}</title></rect>
{{end}}{{range .Marks}}<line class="mark {{.Class}}" x1="{{.X}}" y1="{{.LabelY}}" x2="{{.X}}" y2="{{$d.AxisY}}"/><text x="{{.X}}" y="{{.LabelY}}" dx="4" dy="4">{{.Label}}</text>
{{end}}</svg>
<p class="legend"><span>grey: drill step</span><span style="color:#0969da">blue: rollback command</span><span style="color:#bf8700">amber: waiting for clients to recover</span><span style="color:#b3261e">red: failed step</span></p>
<table>
<thead><tr><th>Step</th><th>Start</th><th>Duration</th><th>Command</th><th>Error</th></tr></thead>
<tbody>{{range .Steps}}<tr><td>{{.Name}}</td><td>{{.StartMS}} ms</td><td>{{.DurationMS}} ms</td><td>{{if .Command}}<code>{{.Command}}</code>{{end}}</td><td>{{.Error}}</td></tr>
{{end}}</tbody>
</table>
{{range .Diff}}<p>{{.Part}}, before (-) and after (+):</p>
<pre>{{range .Lines}}<span class="{{.Class}}">{{.Text}}</span>
{{end}}</pre>
{{end}}{{end}}{{end}}
</body>
</html>
`))
