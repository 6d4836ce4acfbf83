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
// fmix64(xxhash64(subject) XOR xxhash64(seed)) mod 10000.
func Bucket(seed, subject string) uint32 {
	return seeded(seed).bucket(SubjectHash(subject))
}

// SubjectHash is xxhash64 of the subject. It is computed once per request
// and shared by the pool and every flag, which is what keeps a decision with
// ten flags close to the cost of one.
func SubjectHash(subject string) uint64 { return xxhash.Sum64String(subject) }

// hasher is a seed's xxhash64, computed once per snapshot.
type hasher struct{ key uint64 }

func seeded(seed string) hasher { return hasher{key: xxhash.Sum64String(seed)} }

func (h hasher) bucket(subjectHash uint64) uint32 {
	return uint32(fmix64(subjectHash^h.key) % Buckets)
}

// fmix64 is MurmurHash3's 64-bit finalizer: a bijection in which every
// output bit depends on every input bit, so subjects XORed with different
// seed keys land in unrelated buckets.
func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
