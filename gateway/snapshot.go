package gateway

import (
	"maps"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Snapshot is a compiled, immutable Config: everything the request path needs,
// precomputed. It is never modified after Compile returns, so any number of
// goroutines may read it without synchronization.
type Snapshot struct {
	cfg     Config
	version string // Version formatted once, for the X-Switchback-Version header
	pools   []PoolInfo
	// ranges lay the pools over [0, Buckets): a subject whose pool bucket is
	// below ranges[i].upper (and not below the previous upper) goes to
	// ranges[i].pool. Zero-weight pools have no range.
	ranges   []poolRange
	poolHash hasher
	flags    []flagRule
	// flagHeaders[bits] is the X-Switchback-Flags value for that flag set,
	// precomputed when there are few enough flags (2^n strings).
	flagHeaders []string
	// errStatus[code] says whether a response status counts as an error.
	errStatus *[600]bool
}

// PoolInfo describes one compiled pool.
type PoolInfo struct {
	Name      string
	Release   string
	Upstreams []string
	// Weight in hundredths of a percent (0..Buckets).
	Weight uint32
}

type poolRange struct {
	upper uint32
	pool  int
}

type flagRule struct {
	name string
	bp   uint32 // on when bucket < bp
	hash hasher
}

// maxPrecomputedFlags bounds the precomputed header table at 1,024 entries.
const maxPrecomputedFlags = 10

// Decision is where one request goes: an index into Snapshot.Pools and the
// set of flags on for it (bit i is the i-th flag in name order).
type Decision struct {
	Pool  int
	Flags uint64
}

// Compile validates cfg and builds its snapshot. cfg is copied; the caller
// may keep editing its own value.
func Compile(cfg Config) (*Snapshot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Clone()
	s := &Snapshot{
		cfg:      cfg,
		version:  strconv.FormatUint(cfg.Version, 10),
		poolHash: seeded(PoolSeed(cfg.Name)),
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Pools)) {
		bp, _ := BasisPoints(cfg.Weights[name]) // validated above
		s.pools = append(s.pools, PoolInfo{
			Name:      name,
			Release:   cfg.Pools[name].Release,
			Upstreams: cfg.Pools[name].Upstreams,
			Weight:    uint32(bp),
		})
	}
	// Ranges start at bucket 0 with the last pool in name order, so with blue
	// and green, green holds [0, weight×100): a subject is in green when its
	// bucket is below green's weight, as BUCKETING.md specifies. Either end
	// of a two-pool split only ever grows or shrinks at its inner edge, which
	// is what makes a ramp monotone in both directions.
	var upper uint32
	for i := len(s.pools) - 1; i >= 0; i-- {
		if s.pools[i].Weight == 0 {
			continue
		}
		upper += s.pools[i].Weight
		s.ranges = append(s.ranges, poolRange{upper: upper, pool: i})
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Flags)) {
		bp, _ := BasisPoints(cfg.Flags[name].Percent)
		s.flags = append(s.flags, flagRule{name: name, bp: uint32(bp), hash: seeded(FlagSeed(name))})
	}
	g := cfg.Guard
	if g == nil {
		g = &Guard{}
	}
	s.errStatus = g.ErrorStatuses()
	if len(s.flags) <= maxPrecomputedFlags {
		s.flagHeaders = make([]string, 1<<len(s.flags))
		for set := range s.flagHeaders {
			s.flagHeaders[set] = s.joinFlags(uint64(set))
		}
	}
	return s, nil
}

// Decide returns the pool and flags for subject. It takes no lock and
// allocates nothing.
func (s *Snapshot) Decide(subject string) Decision {
	h := SubjectHash(subject)
	d := Decision{Pool: s.poolFor(s.poolHash.bucket(h))}
	for i := range s.flags {
		if f := &s.flags[i]; f.hash.bucket(h) < f.bp {
			d.Flags |= 1 << i
		}
	}
	return d
}

// DecideRandom is Decide for a request that carries no subject: every
// bucket is drawn at random, independently per request.
func (s *Snapshot) DecideRandom() Decision {
	d := Decision{Pool: s.poolFor(rand.Uint32N(Buckets))}
	for i := range s.flags {
		if rand.Uint32N(Buckets) < s.flags[i].bp {
			d.Flags |= 1 << i
		}
	}
	return d
}

func (s *Snapshot) poolFor(bucket uint32) int {
	for _, r := range s.ranges {
		if bucket < r.upper {
			return r.pool
		}
	}
	// Unreachable for a validated config (the ranges cover every bucket);
	// fall back to the last range rather than index out of bounds.
	return s.ranges[len(s.ranges)-1].pool
}

// FlagsHeader is the X-Switchback-Flags value for a flag set: the names of
// the flags that are on, sorted, comma-separated; "" when none is.
func (s *Snapshot) FlagsHeader(set uint64) string {
	if set < uint64(len(s.flagHeaders)) {
		return s.flagHeaders[set]
	}
	return s.joinFlags(set)
}

func (s *Snapshot) joinFlags(set uint64) string {
	var b strings.Builder
	for set != 0 {
		i := bits.TrailingZeros64(set)
		set &^= 1 << i
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.flags[i].name)
	}
	return b.String()
}

// IsError reports whether a response status counts as an error under the
// guard's 'errors' setting (default: 5xx).
func (s *Snapshot) IsError(status int) bool {
	return status >= 0 && status < len(s.errStatus) && s.errStatus[status]
}

// Guard is the fallback policy, nil when off. Shared: do not modify.
func (s *Snapshot) Guard() *Guard { return s.cfg.Guard }

// Health is the active health check setting, nil when off. Shared: do not
// modify.
func (s *Snapshot) Health() *Health { return s.cfg.Health }

// Name is the deployment's name.
func (s *Snapshot) Name() string { return s.cfg.Name }

// Version is the document version this snapshot was compiled from.
func (s *Snapshot) Version() uint64 { return s.cfg.Version }

// Pools lists the pools in name order; Decision.Pool indexes it. The slice
// is shared: do not modify it.
func (s *Snapshot) Pools() []PoolInfo { return s.pools }

// PoolIndex finds a pool by name.
func (s *Snapshot) PoolIndex(name string) (int, bool) {
	i := sort.Search(len(s.pools), func(i int) bool { return s.pools[i].Name >= name })
	return i, i < len(s.pools) && s.pools[i].Name == name
}

// FlagPercent is the i-th flag's rollout in hundredths of a percent.
func (s *Snapshot) FlagPercent(i int) uint32 { return s.flags[i].bp }

// FlagNames lists the flags in name order; bit i of Decision.Flags is
// FlagNames()[i].
func (s *Snapshot) FlagNames() []string {
	names := make([]string, len(s.flags))
	for i, f := range s.flags {
		names[i] = f.name
	}
	return names
}

// Config returns a copy of the document the snapshot was compiled from.
func (s *Snapshot) Config() Config { return s.cfg.Clone() }
