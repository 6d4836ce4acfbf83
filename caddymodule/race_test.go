//go:build race

package caddymodule

// raceEnabled: the race detector changes what allocates (sync.Pool drops
// items at random under it), so allocation counts are not comparable.
const raceEnabled = true
