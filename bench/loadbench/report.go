package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

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
	// GatewayCPUUS is gateway CPU per request, in µs; nil for direct, which
	// does not go through the gateway.
	GatewayCPUUS *float64 `json:"gateway_cpu_us_per_req,omitempty"`
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

func (m *measurement) setGatewayCPU(d time.Duration) {
	if m.Requests == 0 {
		return
	}
	v := micros(d) / float64(m.Requests)
	m.GatewayCPUUS = &v
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
	// VsReverseProxy is set on the switchback row when reverse_proxy was
	// measured too.
	VsReverseProxy *overhead     `json:"vs_reverse_proxy,omitempty"`
	Measurements   []measurement `json:"measurements"`
}

// overhead is switchback relative to reverse_proxy, in percent; positive
// CPU is more CPU per request, negative req/s is fewer requests a second.
type overhead struct {
	CPUPct   *float64      `json:"cpu_pct,omitempty"` // of the medians
	RPSPct   float64       `json:"rps_pct"`           // of the medians
	PerRound []roundChange `json:"per_round"`
}

// roundChange is switchback relative to reverse_proxy within one round.
type roundChange struct {
	Round  int      `json:"round"`
	CPUPct *float64 `json:"cpu_pct,omitempty"`
	RPSPct float64  `json:"rps_pct"`
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
	ElapsedS float64         `json:"elapsed_s"`
	Complete bool            `json:"complete"` // every run of every round finished
}

func newReport(cfg config, ms []measurement, elapsed time.Duration) *report {
	r := &report{ElapsedS: elapsed.Seconds(), Complete: len(ms) == cfg.rounds*len(cfg.targets)}
	r.Config.Bin = cfg.bin
	r.Config.Requests = cfg.requests
	r.Config.Warmup = cfg.warmup
	r.Config.Concurrency = cfg.concurrency
	r.Config.Rounds = cfg.rounds
	r.Config.DurationMax = cfg.durationMax.String()
	r.Config.Targets = cfg.targets
	r.Config.GOMAXPROCS = gomaxprocs()
	r.Config.CPUs = runtime.NumCPU()

	for _, t := range cfg.targets {
		s := targetSummary{Target: t, Measurements: []measurement{}}
		var rps, p50, p99, cpu []float64
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
			s.Measurements = append(s.Measurements, m)
		}
		s.RPS, s.P50US, s.P99US = median(rps), median(p50), median(p99)
		if len(cpu) > 0 {
			c := median(cpu)
			s.GatewayCPUUS = &c
		}
		r.Targets = append(r.Targets, s)
	}

	r.compare(ms)
	return r
}

// compare sets the switchback row's overhead over reverse_proxy: the change
// between the two rows' medians, and, to show how much of it is noise, the
// change within each round, where the two ran close together in time.
func (r *report) compare(ms []measurement) {
	rp, sb := r.target(targetReverseProxy), r.target(targetSwitchback)
	if rp == nil || sb == nil || rp.Runs == 0 || sb.Runs == 0 {
		return
	}
	o := &overhead{RPSPct: pctChange(sb.RPS, rp.RPS), PerRound: []roundChange{}}
	if rp.GatewayCPUUS != nil && sb.GatewayCPUUS != nil {
		c := pctChange(*sb.GatewayCPUUS, *rp.GatewayCPUUS)
		o.CPUPct = &c
	}
	for _, sbm := range sb.Measurements {
		i := slices.IndexFunc(rp.Measurements, func(m measurement) bool { return m.Round == sbm.Round })
		if i < 0 {
			continue
		}
		rpm := rp.Measurements[i]
		rc := roundChange{Round: sbm.Round, RPSPct: pctChange(sbm.RPS, rpm.RPS)}
		if rpm.GatewayCPUUS != nil && sbm.GatewayCPUUS != nil {
			c := pctChange(*sbm.GatewayCPUUS, *rpm.GatewayCPUUS)
			rc.CPUPct = &c
		}
		o.PerRound = append(o.PerRound, rc)
	}
	sb.VsReverseProxy = o
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
	fmt.Fprintf(w, "loadbench: %d requests per run after %d warm-up, concurrency %d, %d interleaved rounds, medians shown\n",
		c.Requests, c.Warmup, c.Concurrency, c.Rounds)
	fmt.Fprintf(w, "load generator, backend and gateway share %d CPUs (GOMAXPROCS %d): expect a few %% noise between runs\n\n",
		c.CPUs, c.GOMAXPROCS)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\treq/s\tp50\tp99\tfailed\tgateway CPU µs/req\tvs reverse_proxy")
	for _, t := range r.Targets {
		if t.Runs == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\tnot measured\n", t.Target)
			continue
		}
		cpu := "-"
		if t.GatewayCPUUS != nil {
			cpu = fmt.Sprintf("%.1f", *t.GatewayCPUUS)
		}
		vs := ""
		if o := t.VsReverseProxy; o != nil {
			cpuPct := "? CPU"
			if o.CPUPct != nil {
				cpuPct = fmt.Sprintf("%+.1f%% CPU", *o.CPUPct)
			}
			vs = fmt.Sprintf("%s, %+.1f%% req/s", cpuPct, o.RPSPct)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t%s\t%s\n",
			t.Target, t.RPS, formatMicros(t.P50US), formatMicros(t.P99US), t.Failed, cpu, vs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	var notes []string
	for _, t := range r.Targets {
		for _, m := range t.Measurements {
			if !m.Complete {
				notes = append(notes, fmt.Sprintf("%s round %d is partial: %d of %d requests", m.Target, m.Round, m.Requests, c.Requests))
			}
		}
	}
	if sb := r.target(targetSwitchback); sb != nil && sb.VsReverseProxy != nil && len(sb.VsReverseProxy.PerRound) > 1 {
		var cpu, rps []string
		for _, rc := range sb.VsReverseProxy.PerRound {
			rps = append(rps, fmt.Sprintf("%+.1f%%", rc.RPSPct))
			if rc.CPUPct != nil {
				cpu = append(cpu, fmt.Sprintf("%+.1f%%", *rc.CPUPct))
			}
		}
		notes = append(notes, fmt.Sprintf("switchback vs reverse_proxy round by round, for a sense of the noise: CPU %s; req/s %s",
			strings.Join(cpu, " "), strings.Join(rps, " ")))
	}
	for _, t := range r.Targets {
		if t.GatewayCPUUS != nil {
			notes = append(notes, fmt.Sprintf("gateway CPU is counted in %v ticks: ±%.1fµs/req at %d requests per run",
				clockTick, micros(clockTick)/float64(c.Requests), c.Requests))
			break
		}
	}
	notes = append(notes, fmt.Sprintf("failed counts every run; took %.1fs", r.ElapsedS))
	fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	return nil
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

// pctChange returns how much larger v is than base, in percent.
func pctChange(v, base float64) float64 {
	if base == 0 {
		return 0
	}
	return (v/base - 1) * 100
}
