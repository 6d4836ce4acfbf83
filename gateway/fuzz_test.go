package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzBucket checks the guarantees of BUCKETING.md for any seed, subject
// and pair of percentages: a bucket is a pure function of seed and subject,
// a snapshot decides exactly as the spec's ranges say, raising a percentage
// never moves a subject out of the pool or cohort it was in, and two
// different seeds bucket a population independently.
func FuzzBucket(f *testing.F) {
	for _, v := range goldenInputs() {
		f.Add(v.Seed, FlagSeed("dark_mode"), v.Subject, uint16(1000), uint16(5000))
	}
	f.Add(PoolSeed("checkout"), PoolSeed("search"), "user-1", uint16(0), uint16(10000))
	f.Add("", "x", "", uint16(9999), uint16(1))
	f.Fuzz(func(t *testing.T, seedA, seedB, subject string, lo, hi uint16) {
		b := Bucket(seedA, subject)
		if b >= Buckets {
			t.Fatalf("Bucket(%q, %q) = %d, outside [0, %d)", seedA, subject, b, Buckets)
		}
		if again := Bucket(seedA, subject); again != b {
			t.Fatalf("Bucket(%q, %q) gave %d, then %d", seedA, subject, b, again)
		}
		if split := seeded(seedA).bucket(SubjectHash(subject)); split != b {
			t.Fatalf("Bucket(%q, %q) = %d but the per-snapshot path gives %d", seedA, subject, b, split)
		}

		lo, hi = lo%(Buckets+1), hi%(Buckets+1)
		if lo > hi {
			lo, hi = hi, lo
		}
		name := "checkout"
		if n, ok := strings.CutPrefix(seedA, "pool:"); ok && ValidName(n) {
			name = n
		}
		flag := "f"
		if n, ok := strings.CutPrefix(seedB, "flag:"); ok && ValidName(n) {
			flag = n
		}
		var prev Decision
		for i, bp := range []uint16{lo, hi} {
			cfg := testConfig(float64(bp)/100, map[string]float64{flag: float64(bp) / 100})
			cfg.Name = name
			snap := mustCompile(t, cfg)
			green, _ := snap.PoolIndex("green")
			d := snap.Decide(subject)
			if inGreen := Bucket(PoolSeed(name), subject) < uint32(bp); (d.Pool == green) != inGreen {
				t.Fatalf("green at %d bp: Decide(%q) in green = %v, the spec says %v", bp, subject, d.Pool == green, inGreen)
			}
			if on := Bucket(FlagSeed(flag), subject) < uint32(bp); (d.Flags&1 != 0) != on {
				t.Fatalf("flag %s at %d bp: Decide(%q) on = %v, the spec says %v", flag, bp, subject, d.Flags&1 != 0, on)
			}
			if i == 1 {
				if prev.Pool == green && d.Pool != green {
					t.Fatalf("subject %q left green when green grew from %d to %d bp", subject, lo, hi)
				}
				if prev.Flags&1 != 0 && d.Flags&1 == 0 {
					t.Fatalf("subject %q left flag %s when it grew from %d to %d bp", subject, flag, lo, hi)
				}
			}
			prev = d
		}

		if seedA == seedB {
			return
		}
		// Independence: over a population, being in the lower half under
		// one seed says nothing about the other. Each share is within six
		// standard deviations (about 0.06 for n = 2000) of a quarter, so a
		// correct implementation fails here less than once in 10^8 inputs.
		const n = 2000
		a, bb := seeded(seedA), seeded(seedB)
		var both int
		buf := []byte(subject)
		for i := range n {
			h := SubjectHash(string(strconv.AppendInt(buf[:len(subject)], int64(i), 10)))
			if a.bucket(h) < Buckets/2 && bb.bucket(h) < Buckets/2 {
				both++
			}
		}
		if share := float64(both) / n; share < 0.19 || share > 0.31 {
			t.Fatalf("seeds %q and %q: %.3f of %d subjects in the lower half under both, want 0.25 ± 0.06", seedA, seedB, share, n)
		}
	})
}

// ownName is the test's own reading of which header names are the
// gateway's: X-Switchback-* in any case, with '_' for '-' anywhere in the
// prefix.
func ownName(k string) bool {
	return strings.HasPrefix(strings.ReplaceAll(strings.ToLower(k), "_", "-"), "x-switchback-")
}

// FuzzStripClientHeaders reads any HTTP/1.1 request as the server would,
// strips it as the handler does, reads its body to the end as the proxy
// does (which is when trailers arrive), and checks that no X-Switchback-*
// header, trailer or Connection token is left in any case or spelling,
// that every other header is left as it was, and that the gateway's own
// headers are the only ones of their kind afterwards.
func FuzzStripClientHeaders(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\nX-Switchback-Pool: green\r\nx-switchback-flags: a\r\nx-switchback-flags: b\r\n" +
			"X_SWITCHBACK_VERSION: 999\r\nX-Switchbackish: kept\r\nConnection: keep-alive, X-Switchback-Pool\r\nConnection: x-switchback-flags\r\nX-User-Id: u1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Switchback-Pool\r\n\r\n" +
			"3\r\nabc\r\n0\r\nX-Switchback-Pool: green\r\nx_switchback_flags: all\r\nX-Other: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-SWITCHBACK-VERSION: 7\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-SwItChBaCk-Pool,,close\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-Switchback-Pool: blue\r\n\r\nabc",
	} {
		f.Add([]byte(s))
	}
	snap, err := Compile(testConfig(50, map[string]float64{"a": 50, "b": 100}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return // the server answers 400 before any handler runs
		}
		before := req.Header.Clone()
		StripClientHeaders(req.Header)
		StripClientTrailers(req)
		if req.Body != nil {
			_, _ = io.Copy(io.Discard, req.Body)
		}
		for _, hdr := range []struct {
			what string
			h    http.Header
		}{{"header", req.Header}, {"trailer", req.Trailer}} {
			for k := range hdr.h {
				if ownName(k) {
					t.Fatalf("%s %q reaches the upstream (request %q)", hdr.what, k, raw)
				}
			}
			for _, v := range hdr.h["Connection"] {
				for tok := range strings.SplitSeq(v, ",") {
					if ownName(strings.TrimSpace(tok)) {
						t.Fatalf("%s Connection names %q, which would strip the gateway's own header (request %q)", hdr.what, tok, raw)
					}
				}
			}
		}
		for k, v := range before {
			if ownName(k) || k == "Connection" {
				continue
			}
			if !slices.Equal(req.Header[k], v) {
				t.Fatalf("header %q changed from %q to %q", k, v, req.Header[k])
			}
		}
		snap.SetUpstreamHeaders(req.Header, snap.Decide("u1"))
		for k, v := range req.Header {
			if ownName(k) && (len(v) != 1 || (k != HeaderPool && k != HeaderFlags && k != HeaderVersion)) {
				t.Fatalf("after the gateway set its headers, %q = %q; want only its own, once each", k, v)
			}
		}
	})
}
