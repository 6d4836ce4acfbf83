package gateway

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/buckets.golden.json from the current implementation")

// goldenVector is one line of the bucketing spec's test vectors.
type goldenVector struct {
	Seed    string `json:"seed"`
	Subject string `json:"subject"`
	Bucket  uint32 `json:"bucket"`
}

const goldenFile = "testdata/buckets.golden.json"

func goldenInputs() []goldenVector {
	var vs []goldenVector
	subjects := []string{"", "a", "user-1", "user-2", "42", "alice@example.com",
		"0123456789abcdef0123456789abcdef", "ünïcødé", "a long subject that spans more than thirty-two bytes of input", strings.Repeat("x", 300)}
	for _, seed := range []string{PoolSeed("checkout"), PoolSeed("search"), FlagSeed("new_payment_flow"), FlagSeed("dark_mode")} {
		for _, s := range subjects {
			vs = append(vs, goldenVector{Seed: seed, Subject: s})
		}
	}
	for i := range 16 {
		vs = append(vs, goldenVector{Seed: PoolSeed("checkout"), Subject: "u" + strconv.Itoa(i)})
	}
	return vs
}

// TestGoldenBuckets pins the bucketing of BUCKETING.md. A change here moves
// real users between pools: if it is intended, regenerate with -update and
// say so in the release notes.
func TestGoldenBuckets(t *testing.T) {
	if *update {
		vs := goldenInputs()
		for i := range vs {
			vs[i].Bucket = Bucket(vs[i].Seed, vs[i].Subject)
		}
		b, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.FromSlash(goldenFile))
	if err != nil {
		t.Fatalf("read golden vectors: %v (generate with go test -run TestGoldenBuckets -update)", err)
	}
	var vs []goldenVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 40 {
		t.Fatalf("golden file has %d vectors, want at least 40", len(vs))
	}
	for _, v := range vs {
		if got := Bucket(v.Seed, v.Subject); got != v.Bucket {
			t.Errorf("Bucket(%q, %q) = %d, want %d", v.Seed, v.Subject, got, v.Bucket)
		}
	}
}

// TestBucketMatchesSpec checks Bucket against the spec's definition written
// out longhand: fmix64(xxhash64(subject) XOR xxhash64(seed)) mod 10000.
func TestBucketMatchesSpec(t *testing.T) {
	fmix := func(x uint64) uint64 {
		x ^= x >> 33
		x *= 0xff51afd7ed558ccd
		x ^= x >> 33
		x *= 0xc4ceb9fe1a85ec53
		x ^= x >> 33
		return x
	}
	for _, v := range goldenInputs() {
		want := uint32(fmix(xxhashSum([]byte(v.Subject))^xxhashSum([]byte(v.Seed))) % Buckets)
		if got := Bucket(v.Seed, v.Subject); got != want {
			t.Errorf("Bucket(%q, %q) = %d, spec says %d", v.Seed, v.Subject, got, want)
		}
	}
}

func TestDistribution(t *testing.T) {
	const n = 1_000_000
	tests := []struct {
		green float64
		flag  float64
	}{
		{green: 1, flag: 1},
		{green: 10, flag: 50},
		{green: 50, flag: 10},
		{green: 90, flag: 0.5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("green=%v flag=%v", tt.green, tt.flag), func(t *testing.T) {
			snap := mustCompile(t, testConfig(tt.green, map[string]float64{"f": tt.flag}))
			green, _ := snap.PoolIndex("green")
			var inGreen, flagOn int
			buf := make([]byte, 0, 32)
			for i := range n {
				buf = strconv.AppendInt(buf[:0], int64(i), 10)
				d := snap.Decide(string(buf))
				if d.Pool == green {
					inGreen++
				}
				if d.Flags&1 != 0 {
					flagOn++
				}
			}
			for _, c := range []struct {
				what      string
				got, want float64
			}{
				{"green share", 100 * float64(inGreen) / n, tt.green},
				{"flag share", 100 * float64(flagOn) / n, tt.flag},
			} {
				if diff := c.got - c.want; diff > 0.5 || diff < -0.5 {
					t.Errorf("%s = %.3f%%, want %.2f%% ± 0.5", c.what, c.got, c.want)
				}
			}
		})
	}
}

// TestMonotoneRamp: every subject in green (or in a flag cohort) at a lower
// percentage stays in at every higher one. With two pools this is also the
// reverse ramp read backwards: blue growing never moves a subject out of blue.
func TestMonotoneRamp(t *testing.T) {
	steps := []float64{0, 1, 10, 25, 50, 99.99, 100}
	const n = 100_000
	var prev *Snapshot
	for _, pct := range steps {
		snap := mustCompile(t, testConfig(pct, map[string]float64{"f": pct}))
		if prev != nil {
			pg, _ := prev.PoolIndex("green")
			g, _ := snap.PoolIndex("green")
			for i := range n {
				s := "user-" + strconv.Itoa(i)
				a, b := prev.Decide(s), snap.Decide(s)
				if a.Pool == pg && b.Pool != g {
					t.Fatalf("subject %q left green when green grew to %v%%", s, pct)
				}
				if a.Flags&1 != 0 && b.Flags&1 == 0 {
					t.Fatalf("subject %q left flag cohort when it grew to %v%%", s, pct)
				}
			}
		}
		prev = snap
	}
}

func TestFlagsIndependentOfPool(t *testing.T) {
	// A 50% flag should be on for about half of green and half of blue: the
	// pool and flag seeds differ, so cohorts are not correlated.
	snap := mustCompile(t, testConfig(50, map[string]float64{"f": 50}))
	green, _ := snap.PoolIndex("green")
	var counts [2][2]int
	for i := range 200_000 {
		d := snap.Decide(strconv.Itoa(i))
		p := 0
		if d.Pool == green {
			p = 1
		}
		counts[p][d.Flags&1]++
	}
	for p := range 2 {
		share := float64(counts[p][1]) / float64(counts[p][0]+counts[p][1])
		if share < 0.49 || share > 0.51 {
			t.Errorf("pool %d: flag on for %.3f of subjects, want 0.50 ± 0.01", p, share)
		}
	}
}

func TestFlagsIndependentOfEachOther(t *testing.T) {
	// Two 50% flags are both on for about a quarter of subjects.
	snap := mustCompile(t, testConfig(0, map[string]float64{"a": 50, "b": 50}))
	const n = 200_000
	both := 0
	for i := range n {
		if snap.Decide(strconv.Itoa(i)).Flags == 0b11 {
			both++
		}
	}
	if share := float64(both) / n; share < 0.24 || share > 0.26 {
		t.Errorf("both flags on for %.4f of subjects, want 0.25 ± 0.01", share)
	}
}
