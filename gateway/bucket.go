package gateway

import "github.com/cespare/xxhash/v2"

// The bucketing scheme is specified in BUCKETING.md and pinned by the golden
// vectors in testdata/; changing anything here moves users between pools and
// cohorts, so the golden test fails first.

// PoolSeed is the seed of a deployment's pool bucketing.
func PoolSeed(deployment string) string { return "pool:" + deployment }

// FlagSeed is the seed of a flag's bucketing. It names the flag only, so a
// flag keeps its cohort if it moves between deployments.
func FlagSeed(flag string) string { return "flag:" + flag }

// Bucket maps a subject to one of Buckets buckets under seed:
// xxhash64(seed ‖ 0x00 ‖ subject) mod 10000.
func Bucket(seed, subject string) uint32 {
	h := seeded(seed)
	return h.bucket(subject)
}

// hasher holds seed ‖ 0x00, built once per snapshot, so a request only
// copies its subject behind it and hashes the whole in one shot on the stack.
type hasher struct{ prefix string }

func seeded(seed string) hasher { return hasher{prefix: seed + "\x00"} }

// inlineKey bounds the stack buffer; longer keys take the streaming path,
// which yields the same hash.
const inlineKey = 256

func (h hasher) bucket(subject string) uint32 {
	n := len(h.prefix) + len(subject)
	if n <= inlineKey {
		var buf [inlineKey]byte
		copy(buf[:], h.prefix)
		copy(buf[len(h.prefix):], subject)
		return uint32(xxhash.Sum64(buf[:n]) % Buckets)
	}
	d := xxhash.New()
	_, _ = d.WriteString(h.prefix)
	_, _ = d.WriteString(subject)
	return uint32(d.Sum64() % Buckets)
}
