package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The goal for switchback's gateway CPU per request relative to plain
// reverse_proxy (issue 15): a median ratio of at most goalMedian, with the
// 95% interval's upper bound at most goalUpper.
const (
	goalMedian = 1.03
	goalUpper  = 1.05
)

// minRounds is the fewest rounds whose interval the table presents without
// a warning.
const minRounds = 10

// bootstrapResamples is how many resamples the 95% interval is taken from;
// with the fixed seed the interval is a function of the measurements.
const bootstrapResamples = 10000

// measurement is one measured run of one target.
type measurement struct {
	Target   string  `json:"target"`
	Round    int     `json:"round"`
	Requests int     `json:"requests"` // done, failed or not
	Failed   int     `json:"failed"`
	Complete bool    `json:"complete"` // false: cut short by -duration-max or a signal
	ElapsedS float64 `json:"elapsed_s"`
	RPS      float64 `json:"rps"`
	P50US    float64 `json:"p50_us"`
	P99US    float64 `json:"p99_us"`
	// GatewayCPUUS is the server's CPU per request, in µs; nil for direct,
	// which goes through no server.
	GatewayCPUUS *float64 `json:"gateway_cpu_us_per_req,omitempty"`
	// LoadCPUUS is this process's CPU per request, in µs: load generator
	// and backend.
	LoadCPUUS *float64 `json:"load_cpu_us_per_req,omitempty"`
}

func (m *measurement) setLoad(r loadResult, want int) {
	m.Requests = r.done
	m.Failed = r.failed
	m.Complete = r.done == want
	m.ElapsedS = r.elapsed.Seconds()
	if r.elapsed > 0 {
		m.RPS = float64(r.done) / r.elapsed.Seconds()
	}
	m.P50US = micros(percentile(r.latencies, 0.50))
	m.P99US = micros(percentile(r.latencies, 0.99))
}

// perRequest is d per request in µs; nil without requests.
func perRequest(d time.Duration, requests int) *float64 {
	if requests == 0 {
		return nil
	}
	v := micros(d) / float64(requests)
	return &v
}

// summary is the progress line for one run.
func (m *measurement) summary() string {
	s := fmt.Sprintf("%7.0f req/s  p50 %-8s p99 %-8s failed %d", m.RPS, formatMicros(m.P50US), formatMicros(m.P99US), m.Failed)
	if m.GatewayCPUUS != nil {
		s += fmt.Sprintf("  gateway CPU %.1fµs/req", *m.GatewayCPUUS)
	}
	if !m.Complete {
		s += fmt.Sprintf("  (partial: %d requests)", m.Requests)
	}
	return s
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// targetSummary is one row of the table: medians over a target's runs.
type targetSummary struct {
	Target  string  `json:"target"`
	Runs    int     `json:"runs"`    // behind the medians
	Partial int     `json:"partial"` // of those, cut short
	RPS     float64 `json:"rps"`
	P50US   float64 `json:"p50_us"`
	P99US   float64 `json:"p99_us"`
	Failed  int     `json:"failed"` // over all runs, not a median
	// GatewayCPUUS is nil for direct.
	GatewayCPUUS *float64 `json:"gateway_cpu_us_per_req,omitempty"`
	LoadCPUUS    *float64 `json:"load_cpu_us_per_req,omitempty"`
	// VsReverseProxy is the gateway CPU ratio to reverse_proxy, set on the
	// nginx and switchback rows when reverse_proxy was measured too.
	VsReverseProxy *ratio        `json:"vs_reverse_proxy,omitempty"`
	Measurements   []measurement `json:"measurements"`
}

// ratio is a target's gateway CPU per request over reverse_proxy's, taken
// within each round and summarised over the rounds.
type ratio struct {
	PerRound []float64 `json:"per_round"`
	Median   float64   `json:"median"`
	// Low and High bound the median's bootstrap 95% interval.
	Low  float64 `json:"low"`
	High float64 `json:"high"`
	// Verdict, on the switchback row, is met, missed or undecided.
	Verdict string `json:"verdict,omitempty"`
}

type report struct {
	Config struct {
		Bin         string   `json:"bin"`
		Requests    int      `json:"requests"`
		Warmup      int      `json:"warmup"`
		Concurrency int      `json:"concurrency"`
		Rounds      int      `json:"rounds"`
		DurationMax string   `json:"duration_max"`
		Targets     []string `json:"targets"`
		GOMAXPROCS  int      `json:"gomaxprocs"`
		CPUs        int      `json:"cpus"`
	} `json:"config"`
	Targets  []targetSummary `json:"targets"`
	Notes    []string        `json:"notes"`
	ElapsedS float64         `json:"elapsed_s"`
	Complete bool            `json:"complete"` // every run of every round finished
}

func newReport(cfg config, ms []measurement, notes []string, elapsed time.Duration) *report {
	r := &report{ElapsedS: elapsed.Seconds(), Complete: len(ms) == cfg.rounds*len(cfg.targets), Notes: append([]string{}, notes...)}
	r.Config.Bin = cfg.bin
	r.Config.Requests = cfg.requests
	r.Config.Warmup = cfg.warmup
	r.Config.Concurrency = cfg.concurrency
	r.Config.Rounds = cfg.rounds
	r.Config.DurationMax = cfg.durationMax.String()
	r.Config.Targets = cfg.targets
	r.Config.GOMAXPROCS = runtime.GOMAXPROCS(0)
	r.Config.CPUs = runtime.NumCPU()

	for _, t := range cfg.targets {
		s := targetSummary{Target: t, Measurements: []measurement{}}
		var rps, p50, p99, cpu, load []float64
		for _, m := range ms {
			if m.Target != t {
				continue
			}
			if !m.Complete {
				s.Partial++
				r.Complete = false
			}
			s.Runs++
			s.Failed += m.Failed
			rps = append(rps, m.RPS)
			p50 = append(p50, m.P50US)
			p99 = append(p99, m.P99US)
			if m.GatewayCPUUS != nil {
				cpu = append(cpu, *m.GatewayCPUUS)
			}
			if m.LoadCPUUS != nil {
				load = append(load, *m.LoadCPUUS)
			}
			s.Measurements = append(s.Measurements, m)
		}
		s.RPS, s.P50US, s.P99US = median(rps), median(p50), median(p99)
		if len(cpu) > 0 {
			c := median(cpu)
			s.GatewayCPUUS = &c
		}
		if len(load) > 0 {
			l := median(load)
			s.LoadCPUUS = &l
		}
		r.Targets = append(r.Targets, s)
	}

	rp := r.target(targetReverseProxy)
	for _, name := range []string{targetNginx, targetSwitchback} {
		if t := r.target(name); t != nil && rp != nil {
			t.VsReverseProxy = compare(t.Measurements, rp.Measurements)
		}
	}
	if sb := r.target(targetSwitchback); sb != nil && sb.VsReverseProxy != nil {
		sb.VsReverseProxy.Verdict = verdict(sb.VsReverseProxy)
	}
	return r
}

// compare pairs each round's gateway CPU of a target with reverse_proxy's
// in the same round; nil when no round has both.
func compare(ms, base []measurement) *ratio {
	var per []float64
	for _, m := range ms {
		i := slices.IndexFunc(base, func(b measurement) bool { return b.Round == m.Round })
		if i < 0 || m.GatewayCPUUS == nil || base[i].GatewayCPUUS == nil || *base[i].GatewayCPUUS == 0 {
			continue
		}
		per = append(per, *m.GatewayCPUUS / *base[i].GatewayCPUUS)
	}
	if len(per) == 0 {
		return nil
	}
	lo, hi := bootstrapMedianCI(per, bootstrapResamples)
	return &ratio{PerRound: per, Median: median(slices.Clone(per)), Low: lo, High: hi}
}

// bootstrapMedianCI is the 95% percentile-bootstrap interval of the median
// of xs: the 2.5th and 97.5th percentiles of the medians of n resamples
// drawn with replacement. The seed is fixed, so the interval depends only
// on xs.
func bootstrapMedianCI(xs []float64, n int) (lo, hi float64) {
	rng := rand.New(rand.NewPCG(15, 3))
	meds := make([]float64, n)
	sample := make([]float64, len(xs))
	for i := range meds {
		for j := range sample {
			sample[j] = xs[rng.IntN(len(xs))]
		}
		meds[i] = median(sample)
	}
	slices.Sort(meds)
	at := func(q float64) float64 {
		return meds[min(n-1, max(0, int(math.Round(q*float64(n-1)))))]
	}
	return at(0.025), at(0.975)
}

// verdict judges a ratio against the goal: met when the median and the
// upper bound are within it, missed when even the lower bound is above
// the median goal, undecided when the interval still spans the goal.
func verdict(r *ratio) string {
	switch {
	case r.Median <= goalMedian && r.High <= goalUpper:
		return "met"
	case r.Low > goalMedian:
		return "missed"
	}
	return "undecided"
}

func (r *report) target(name string) *targetSummary {
	for i := range r.Targets {
		if r.Targets[i].Target == name {
			return &r.Targets[i]
		}
	}
	return nil
}

func (r *report) failed() int {
	n := 0
	for _, t := range r.Targets {
		n += t.Failed
	}
	return n
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeTable(w io.Writer) error {
	c := r.Config
	fmt.Fprintf(w, "loadbench: %d requests per run after %d warm-up, concurrency %d, %d rounds (alternating order), medians shown\n\n",
		c.Requests, c.Warmup, c.Concurrency, c.Rounds)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\treq/s\tp50\tp99\tfailed\tgateway CPU µs/req\tload+backend CPU µs/req\tgateway CPU / reverse_proxy [95% CI]")
	for _, t := range r.Targets {
		if t.Runs == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\tnot measured\n", t.Target)
			continue
		}
		vs := ""
		if o := t.VsReverseProxy; o != nil {
			vs = fmt.Sprintf("%.3f [%.3f, %.3f]", o.Median, o.Low, o.High)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t%s\t%s\t%s\n",
			t.Target, t.RPS, formatMicros(t.P50US), formatMicros(t.P99US), t.Failed, formatCPU(t.GatewayCPUUS), formatCPU(t.LoadCPUUS), vs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if sb := r.target(targetSwitchback); sb != nil && sb.VsReverseProxy != nil {
		o := sb.VsReverseProxy
		fmt.Fprintf(w, "\nswitchback / reverse_proxy gateway CPU per request: median %.3f, 95%% CI [%.3f, %.3f] over %d rounds; goal median ≤ %.2f and upper bound ≤ %.2f: %s\n",
			o.Median, o.Low, o.High, len(o.PerRound), goalMedian, goalUpper, verdictText(o))
		if len(o.PerRound) < minRounds {
			fmt.Fprintf(w, "(fewer than %d rounds: the interval is rough)\n", minRounds)
		}
	}

	notes := slices.Clone(r.Notes)
	for _, t := range r.Targets {
		for _, m := range t.Measurements {
			if !m.Complete {
				notes = append(notes, fmt.Sprintf("%s round %d is partial: %d of %d requests", m.Target, m.Round, m.Requests, c.Requests))
			}
		}
	}
	if sb := r.target(targetSwitchback); sb != nil && sb.VsReverseProxy != nil && len(sb.VsReverseProxy.PerRound) > 1 {
		var per []string
		for _, v := range sb.VsReverseProxy.PerRound {
			per = append(per, fmt.Sprintf("%.3f", v))
		}
		notes = append(notes, "switchback / reverse_proxy round by round: "+strings.Join(per, " "))
	}
	notes = append(notes, fmt.Sprintf("%d CPUs, GOMAXPROCS %d here; failed counts every run; took %.1fs", c.CPUs, c.GOMAXPROCS, r.ElapsedS))
	fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	return nil
}

func verdictText(o *ratio) string {
	switch o.Verdict {
	case "met":
		return "met"
	case "missed":
		return "missed (the whole interval is above the goal)"
	}
	return "undecided: the interval still spans the goal; run more rounds, or on a quieter machine"
}

func formatCPU(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *v)
}

// formatMicros formats a latency in µs below a millisecond and in ms above.
func formatMicros(us float64) string {
	if us < 1000 {
		return fmt.Sprintf("%.0fµs", us)
	}
	return fmt.Sprintf("%.2fms", us/1000)
}

// median returns the median of vs, or 0 for none; vs is reordered.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}
