// Command benchtab turns `go test -bench` output into a table a person can
// read: one row per benchmark with its time, allocations, any custom
// metrics, and the goal the project set for it.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
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
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

func main() {
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tns/op\tB/op\tallocs/op\tother\tgoal")
	pkg := ""
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
	}
	tw.Flush()
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
