// Command benchtab turns `go test -bench` output into a table a person can
// read: one row per benchmark with its time, allocations, any custom
// metrics, and the goal the project set for it.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
)

// goals are the targets from the issues, by benchmark name prefix.
var goals = []struct{ prefix, goal string }{
	{"BenchmarkDecide/flags=0", "< 50 ns, 0 allocs"},
	{"BenchmarkDecide/flags=1", "< 65 ns, 0 allocs"},
	{"BenchmarkDecide/flags=10", "< 200 ns, 0 allocs"},
	{"BenchmarkRecord/flags=0", "< 30 ns added per request"},
	{"BenchmarkRecord/flags=1", "< 30 ns added per request"},
	{"BenchmarkPropagation", "p99 < 50 ms"},
	{"BenchmarkFlipUnderLoad", "0 failed"},
	{"BenchmarkFallback/rps=50", "< 2000 ms to healthy"},
	{"BenchmarkFallback/rps=200", "< 2000 ms to healthy"},
	{"BenchmarkFallback/rps=1000", "< 2000 ms to healthy"},
	{"BenchmarkSnapshot1MPostgres/restore", "< 60 s for 1M rows"},
	{"BenchmarkProxy/switchback", "allocs ≤ reverse_proxy+3_headers + 3"},
	{"BenchmarkChangeSetRevertWatchers", "p99 < 1000 ms"},
	{"BenchmarkOneWriteLongPoll1000", "p99 < 100 ms"},
	{"BenchmarkReleaseRollback", "< 10 s to all back (seed 6 m 47 s)"},
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

func main() {
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tns/op\tB/op\tallocs/op\tother\tgoal")
	pkg := ""
	var proxy []row
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		text := sc.Text()
		if strings.HasPrefix(text, "pkg: ") {
			pkg = strings.TrimPrefix(text, "pkg: ")
			fmt.Fprintf(tw, "[%s]\t\t\t\t\t\n", pkg[strings.LastIndex(pkg, "/")+1:])
			continue
		}
		if strings.HasPrefix(text, "FAIL") || strings.HasPrefix(text, "--- FAIL") || strings.Contains(text, "panic:") {
			fmt.Fprintln(tw, text)
			continue
		}
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		var ns, bytes, allocs string
		var other []string
		for i := 0; i+1 < len(fields); i += 2 {
			v, unit := fields[i], fields[i+1]
			switch unit {
			case "ns/op":
				ns = v
			case "B/op":
				bytes = v
			case "allocs/op":
				allocs = v
			default:
				other = append(other, v+" "+unit)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", strings.TrimPrefix(m[1], "Benchmark"), ns, bytes, allocs, strings.Join(other, ", "), goalFor(m[1]))
		if name, ok := strings.CutPrefix(m[1], proxyPrefix); ok {
			proxy = append(proxy, parseRow(name, bytes, allocs))
		}
	}
	tw.Flush()
	writeProxyCost(os.Stdout, proxy)
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "benchtab:", err)
		os.Exit(1)
	}
}

func goalFor(name string) string {
	for _, g := range goals {
		if name == g.prefix || strings.HasPrefix(name, g.prefix+"/") {
			return g.goal
		}
	}
	return ""
}

// proxyPrefix names the rows of caddymodule's BenchmarkProxy, whose client
// and backend allocate nothing, so their B/op and allocs/op are the
// gateway's per request.
const proxyPrefix = "BenchmarkProxy/"

// proxyAllocBudget is issue 15's goal: switchback may allocate at most this
// many times per request more than reverse_proxy carrying the same headers.
const proxyAllocBudget = 3

type row struct {
	name          string
	bytes, allocs float64
	ok            bool // both figures were reported
}

func parseRow(name, bytes, allocs string) row {
	b, errB := strconv.ParseFloat(bytes, 64)
	a, errA := strconv.ParseFloat(allocs, 64)
	return row{name: name, bytes: b, allocs: a, ok: errB == nil && errA == nil}
}

// writeProxyCost prints what each switchback row of BenchmarkProxy
// allocates beyond plain reverse_proxy and beyond reverse_proxy carrying
// the same three headers, against the goal; nothing when the baselines are
// missing.
func writeProxyCost(w io.Writer, rows []row) {
	var plain, ref row
	for _, r := range rows {
		switch r.name {
		case "reverse_proxy":
			plain = r
		case "reverse_proxy+3_headers":
			ref = r
		}
	}
	if !plain.ok || !ref.ok {
		return
	}
	fmt.Fprintf(w, "\nPer request beyond Caddy (BenchmarkProxy; gateway only):\n")
	fmt.Fprintf(w, "  Caddy charges %+.0f allocs, %+.0f B for carrying three more request headers (reverse_proxy+3_headers vs reverse_proxy)\n",
		ref.allocs-plain.allocs, ref.bytes-plain.bytes)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  switchback\tallocs\tB\tvs reverse_proxy\tvs reverse_proxy+3_headers\tgoal (≤ +3 allocs)")
	for _, r := range rows {
		if !r.ok || !strings.HasPrefix(r.name, "switchback") {
			continue
		}
		verdict := "met"
		if r.allocs > ref.allocs+proxyAllocBudget {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%.0f\t%.0f\t%+.0f allocs, %+.0f B\t%+.0f allocs, %+.0f B\t%s\n",
			strings.TrimPrefix(r.name, "switchback/"), r.allocs, r.bytes,
			r.allocs-plain.allocs, r.bytes-plain.bytes, r.allocs-ref.allocs, r.bytes-ref.bytes, verdict)
	}
	tw.Flush()
}
