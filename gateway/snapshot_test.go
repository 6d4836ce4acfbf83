package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func testConfig(green float64, flags map[string]float64) Config {
	c := Config{
		Name:    "checkout",
		Version: 1,
		Pools: map[string]Pool{
			"blue":  {Upstreams: []string{"127.0.0.1:9001"}, Release: "v1"},
			"green": {Upstreams: []string{"127.0.0.1:9002"}, Release: "v2"},
		},
		Weights: map[string]float64{"blue": 100 - green, "green": green},
	}
	if flags != nil {
		c.Flags = map[string]Flag{}
		for k, v := range flags {
			c.Flags[k] = Flag{Percent: v}
		}
	}
	return c
}

func mustCompile(t testing.TB, c Config) *Snapshot {
	t.Helper()
	s, err := Compile(c)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*Config)
		wantField string
		wantIn    string
	}{
		{"bad deployment name", func(c *Config) { c.Name = "a b" }, "name", `"a b"`},
		{"one pool", func(c *Config) { delete(c.Pools, "green"); c.Weights = map[string]float64{"blue": 100} }, "pools", "at least two pools"},
		{"pool without upstreams", func(c *Config) { c.Pools["green"] = Pool{} }, "pools.green.upstreams", "at least one upstream"},
		{"bad upstream", func(c *Config) { c.Pools["green"] = Pool{Upstreams: []string{"nope"}} }, "pools.green.upstreams", `"nope"`},
		{"https upstream", func(c *Config) { c.Pools["green"] = Pool{Upstreams: []string{"https://x:1"}} }, "pools.green.upstreams", "tls"},
		{"placeholder host", func(c *Config) {
			c.Pools["green"] = Pool{Upstreams: []string{"{http.request.header.X-Evil}:19101"}}
		}, "pools.green.upstreams", "placeholders"},
		{"placeholder port", func(c *Config) {
			c.Pools["green"] = Pool{Upstreams: []string{"http://127.0.0.1:{env.PORT}"}}
		}, "pools.green.upstreams", "want host:port or http://host:port"},
		{"bad port", func(c *Config) { c.Pools["green"] = Pool{Upstreams: []string{"x:99999"}} }, "pools.green.upstreams", "1 to 65535"},
		{"duplicate upstream", func(c *Config) {
			c.Pools["green"] = Pool{Upstreams: []string{"x:1", "x:1"}}
		}, "pools.green.upstreams", "twice"},
		{"weights not 100", func(c *Config) { c.Weights["green"] = 20 }, "weights", "sum to 120"},
		{"weight unknown pool", func(c *Config) { c.Weights["red"] = 0 }, "weights.red", "known pools: blue, green"},
		{"weight negative", func(c *Config) { c.Weights["green"] = -1 }, "weights.green", "0 to 100"},
		{"weight three decimals", func(c *Config) { c.Weights["green"] = 0.005; c.Weights["blue"] = 99.995 }, "weights.blue", "two decimals"},
		{"flag over 100", func(c *Config) { c.Flags = map[string]Flag{"f": {Percent: 101}} }, "flags.f.percent", "0 to 100"},
		{"flag bad name", func(c *Config) { c.Flags = map[string]Flag{"a,b": {Percent: 1}} }, "flags", `"a,b"`},
		{"unknown environment", func(c *Config) { c.Environment = "prod" }, "environment", "production, staging, development, test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(0, nil)
			tt.edit(&c)
			err := c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tt.wantField || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("Validate() = field %q, %q; want field %q mentioning %q", fe.Field, err, tt.wantField, tt.wantIn)
			}
		})
	}
}

func TestCheckWeightsCover(t *testing.T) {
	pools := testConfig(0, nil).Pools
	tests := []struct {
		name    string
		weights map[string]float64
		wantErr string // "" for none
	}{
		{"every pool", map[string]float64{"blue": 100, "green": 0}, ""},
		{"one left out", map[string]float64{"blue": 100}, "missing: green"},
		{"none given", map[string]float64{}, "missing: blue, green"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckWeightsCover(tt.weights, pools)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckWeightsCover() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "weights" || !strings.Contains(fe.Want, tt.wantErr) {
				t.Fatalf("CheckWeightsCover() = %v, want a weights *FieldError mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestParsePercent(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"10", 10, false}, {"0.5", 0.5, false}, {"12.25%", 12.25, false}, {"100", 100, false}, {"0", 0, false},
		{"100.01", 0, true}, {"-1", 0, true}, {"0.001", 0, true}, {"ten", 0, true}, {"1e1", 0, true}, {"", 0, true}, {"NaN", 0, true},
	}
	for _, tt := range tests {
		got, err := ParsePercent(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParsePercent(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDecideEdges(t *testing.T) {
	for _, green := range []float64{0, 100} {
		snap := mustCompile(t, testConfig(green, map[string]float64{"off": 0, "on": 100}))
		want := "blue"
		if green == 100 {
			want = "green"
		}
		for i := range 1000 {
			d := snap.Decide(strconv.Itoa(i))
			if got := snap.Pools()[d.Pool].Name; got != want {
				t.Fatalf("green=%v: subject %d went to %s, want %s", green, i, got, want)
			}
			if got := snap.FlagsHeader(d.Flags); got != "on" {
				t.Fatalf("flags header = %q, want %q", got, "on")
			}
			if d := snap.DecideRandom(); snap.Pools()[d.Pool].Name != want {
				t.Fatalf("random decision went to %s, want %s", snap.Pools()[d.Pool].Name, want)
			}
		}
	}
}

func TestFlagsHeaderSortedBeyondTable(t *testing.T) {
	flags := map[string]float64{}
	for i := range 12 { // more than maxPrecomputedFlags: built per request
		flags["f"+strconv.Itoa(100+i)] = 100
	}
	snap := mustCompile(t, testConfig(0, flags))
	d := snap.Decide("x")
	got := snap.FlagsHeader(d.Flags)
	want := strings.Join(snap.FlagNames(), ",")
	if got != want {
		t.Errorf("FlagsHeader = %q, want %q", got, want)
	}
}

func TestStripClientHeaders(t *testing.T) {
	h := http.Header{
		"X-Switchback-Pool":    {"green"},
		"x-switchback-flags":   {"a", "b"},
		"X_SWITCHBACK_VERSION": {"999"},
		"X-Switchback-Other":   {"1"},
		"X-Switchbackish":      {"kept"},
		"Connection":           {"keep-alive, X-Switchback-Pool", "x-switchback-flags"},
		"X-User-Id":            {"u1"},
	}
	StripClientHeaders(h)
	want := http.Header{
		"X-Switchbackish": {"kept"},
		"Connection":      {"keep-alive", ""},
		"X-User-Id":       {"u1"},
	}
	if len(h) != len(want) {
		t.Fatalf("after strip: %v, want %v", h, want)
	}
	for k, v := range want {
		if strings.Join(h[k], "|") != strings.Join(v, "|") {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
	snap := mustCompile(t, testConfig(100, map[string]float64{"b": 100, "a": 100}))
	snap.SetUpstreamHeaders(h, snap.Decide("u1"))
	for k, v := range map[string]string{HeaderPool: "green", HeaderFlags: "a,b", HeaderVersion: "1"} {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		kind, name string
		hdr        http.Header
		remote     string
		clientIP   string
		want       string
		wantOK     bool
	}{
		{"header", "x-user-id", http.Header{"X-User-Id": {"u1"}}, "", "", "u1", true},
		{"header", "X-User-ID", http.Header{}, "", "", "", false},
		{"cookie", "", http.Header{"Cookie": {"a=1; sb_uid=abc; b=2"}}, "", "", "abc", true},
		{"cookie", "sid", http.Header{"Cookie": {"a=1", `sid="q"`}}, "", "", "q", true},
		{"cookie", "", http.Header{"Cookie": {"sb_uidx=1; sb_uid="}}, "", "", "", false},
		{"ip", "", http.Header{}, "10.1.2.3:555", "", "10.1.2.3", true},
		{"ip", "", http.Header{}, "10.1.2.3:555", "192.0.2.9", "192.0.2.9", true},
	}
	for _, tt := range tests {
		s, err := ParseSticky(tt.kind, tt.name)
		if err != nil {
			t.Fatalf("ParseSticky(%q, %q): %v", tt.kind, tt.name, err)
		}
		r := &http.Request{Header: tt.hdr, RemoteAddr: tt.remote}
		got, ok := s.Subject(r, tt.clientIP)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s %s: Subject = %q, %v; want %q, %v", tt.kind, tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
	for _, bad := range [][2]string{{"query", "x"}, {"header", ""}, {"header", "a b"}, {"ip", "x"}} {
		var fe *FieldError
		if _, err := ParseSticky(bad[0], bad[1]); !errors.As(err, &fe) {
			t.Errorf("ParseSticky(%q, %q) = %v, want a *FieldError", bad[0], bad[1], err)
		}
	}
}

type recordingBinder struct {
	name     string
	fail     bool
	prepared []uint64
	live     *Snapshot
}

func (b *recordingBinder) Prepare(s *Snapshot) (func(), error) {
	b.prepared = append(b.prepared, s.Version())
	if b.fail {
		return nil, errors.New(b.name + " cannot serve it")
	}
	return func() { b.live = s }, nil
}

func TestDeploymentApplyAllOrNothing(t *testing.T) {
	d := NewDeployment("checkout")
	a := &recordingBinder{name: "a"}
	if _, err := d.Attach(a); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(testConfig(0, nil)); err != nil {
		t.Fatal(err)
	}
	b := &recordingBinder{name: "b"}
	detachB, err := d.Attach(b)
	if err != nil {
		t.Fatal(err)
	}
	if b.live == nil || b.live.Version() != 1 {
		t.Fatalf("a binder attached late should be prepared with the live version 1, got %v", b.live)
	}

	// A binder that fails leaves every binder and the deployment as they were.
	b.fail = true
	c := testConfig(50, nil)
	c.Version = 2
	if _, err := d.Apply(c); err == nil {
		t.Fatal("Apply with a failing binder succeeded")
	}
	if d.Snapshot().Version() != 1 || a.live.Version() != 1 || b.live.Version() != 1 {
		t.Fatalf("after a failed apply: deployment v%d, a v%d, b v%d; want all v1", d.Snapshot().Version(), a.live.Version(), b.live.Version())
	}

	// An invalid document is refused before any binder sees it.
	bad := testConfig(50, nil)
	bad.Weights["green"] = 70
	before := len(a.prepared)
	var fe *FieldError
	if _, err := d.Apply(bad); !errors.As(err, &fe) {
		t.Fatalf("Apply(invalid) = %v, want a *FieldError", err)
	}
	if len(a.prepared) != before {
		t.Error("an invalid document reached a binder")
	}

	detachB()
	detachB()
	if _, err := d.Apply(c); err != nil {
		t.Fatal(err)
	}
	if a.live.Version() != 2 || b.live.Version() != 1 {
		t.Errorf("after detaching b: a v%d, b v%d; want a v2, b v1", a.live.Version(), b.live.Version())
	}

	// Versions never go backwards, whoever applies them.
	old := testConfig(0, nil)
	old.Version = 2
	if _, err := d.Apply(old); !errors.Is(err, ErrStale) {
		t.Errorf("Apply(the live version again) = %v, want ErrStale", err)
	}
	old.Version = 1
	if _, err := d.Apply(old); !errors.Is(err, ErrStale) || d.Snapshot().Version() != 2 {
		t.Errorf("Apply(an older version) = %v, live v%d; want ErrStale and v2 kept", err, d.Snapshot().Version())
	}

	other := testConfig(0, nil)
	other.Name = "search"
	if _, err := d.Apply(other); !errors.Is(err, ErrNameMismatch) {
		t.Errorf("Apply(other deployment) = %v, want ErrNameMismatch", err)
	}
}

func benchSnapshot(b *testing.B, nflags int) *Snapshot {
	flags := map[string]float64{}
	for i := range nflags {
		flags["flag_"+strconv.Itoa(i)] = 10 * float64(i%10+1) / 2
	}
	return mustCompile(b, testConfig(10, flags))
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{0, 1, 10} {
		b.Run("flags="+strconv.Itoa(n), func(b *testing.B) {
			snap := benchSnapshot(b, n)
			subjects := make([]string, 1024)
			for i := range subjects {
				subjects[i] = "user-" + strconv.Itoa(i*7919)
			}
			b.ReportAllocs()
			var sink Decision
			i := 0
			for b.Loop() {
				sink = snap.Decide(subjects[i&1023])
				i++
			}
			_ = sink
		})
	}
}

func BenchmarkSubjectCookie(b *testing.B) {
	s, _ := ParseSticky("cookie", "")
	r := &http.Request{Header: http.Header{"Cookie": {"_ga=GA1.2.3; theme=dark; sb_uid=0123456789abcdef0123456789abcdef; x=y"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Subject(r, ""); !ok {
			b.Fatal("no subject")
		}
	}
}

// BenchmarkStripClientHeaders is the common case: a browser-like request
// with nothing to strip.
func BenchmarkStripClientHeaders(b *testing.B) {
	h := http.Header{
		"Accept": {"text/html"}, "Accept-Encoding": {"gzip, br"}, "Accept-Language": {"en"},
		"User-Agent": {"bench"}, "X-User-Id": {"u1"}, "Connection": {"keep-alive"},
		"Cookie": {"sb_uid=0123456789abcdef0123456789abcdef"}, "X-Request-Id": {"r1"},
	}
	b.ReportAllocs()
	for b.Loop() {
		StripClientHeaders(h)
	}
}

func BenchmarkSetUpstreamHeaders(b *testing.B) {
	snap := benchSnapshot(b, 2)
	d := snap.Decide("u1")
	b.ReportAllocs()
	for b.Loop() {
		h := make(http.Header, 4)
		snap.SetUpstreamHeaders(h, d)
	}
}

// TestApplyNeverGoesBack: writers racing with versions in any order leave
// the newest live, and a reader never sees the version decrease.
func TestApplyNeverGoesBack(t *testing.T) {
	d := NewDeployment("checkout")
	const writers, top = 8, 400
	stop := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		var last uint64
		for {
			select {
			case <-stop:
				readerErr <- nil
				return
			default:
			}
			if s := d.Snapshot(); s != nil {
				if s.Version() < last {
					readerErr <- fmt.Errorf("live version went from %d back to %d", last, s.Version())
					return
				}
				last = s.Version()
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := top - w; v > 0; v -= writers { // newest first: most applies are stale
				c := testConfig(float64(v%2)*100, nil)
				c.Version = uint64(v)
				if _, err := d.Apply(c); err != nil && !errors.Is(err, ErrStale) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-readerErr; err != nil {
		t.Error(err)
	}
	if got := d.Snapshot().Version(); got != top {
		t.Errorf("live version %d, want the newest, %d", got, top)
	}
}
