package caddymodule

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

func appliedDoc(name string, version uint64) configstore.Document {
	return configstore.Document{Config: gateway.Config{Name: name}, Meta: configstore.Meta{Version: version}}
}

// gatedWrites is a recorder's write that holds each write until the test
// releases it, and lists what was written.
type gatedWrites struct {
	release chan struct{}
	mu      sync.Mutex // protects written
	written []string
}

func (g *gatedWrites) write(doc configstore.Document) {
	<-g.release
	g.mu.Lock()
	defer g.mu.Unlock()
	g.written = append(g.written, fmt.Sprintf("%s@%d", doc.Config.Name, doc.Meta.Version))
}

func (g *gatedWrites) got() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.written)
}

func TestRecorderKeepsNewestPerDeployment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gatedWrites{release: make(chan struct{})}
		r := newRecorder(g.write)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); r.run(ctx) }()
		t.Cleanup(func() { cancel(); close(g.release); <-done })

		r.offer(appliedDoc("checkout", 1))
		synctest.Wait() // checkout@1 is being written
		for v := uint64(2); v <= 6; v++ {
			r.offer(appliedDoc("checkout", v))
		}
		r.offer(appliedDoc("search", 3))
		r.offer(appliedDoc("checkout", 4)) // late and older: dropped

		for range 3 {
			g.release <- struct{}{}
		}
		synctest.Wait()
		want := []string{"checkout@1", "checkout@6", "search@3"}
		if got := g.got(); !slices.Equal(got, want) {
			t.Errorf("written %v, want %v: while checkout@1 was written, only the newest version of each deployment waits", got, want)
		}
	})
}

func TestRecorderStopWaitsForWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gatedWrites{release: make(chan struct{})}
		r := newRecorder(g.write)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); r.run(ctx) }()

		r.offer(appliedDoc("checkout", 1))
		synctest.Wait() // checkout@1 is being written
		r.offer(appliedDoc("checkout", 2))
		cancel()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("recorder returned with a write under way")
		default:
		}

		// Stopping still records what was pending: a gateway stopping right
		// after a flip keeps the flip as its last-known-good.
		close(g.release)
		<-done
		if got, want := g.got(), []string{"checkout@1", "checkout@2"}; !slices.Equal(got, want) {
			t.Errorf("written %v, want %v", got, want)
		}
	})
}
