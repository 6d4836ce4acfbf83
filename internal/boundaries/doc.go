// Package boundaries holds no code, only the test that pins which packages
// may import what: the request path (gateway) and the guard's judgement
// (guard) link neither Caddy nor etcd, only configstore imports etcd, only
// the Caddy shell imports Caddy, the packages at the bottom import only
// what their table allows, and the test harness stays in tests. A change that crosses a line fails `go test
// ./internal/boundaries/`, naming the import and the chain that brings it.
package boundaries
