//go:build race

package e2e

// raceBuild builds the gateway with the race detector when the tests run
// with it, so the gateway processes are checked too.
const raceBuild = true
