package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
)

// lkgTempPrefix starts the name of a last-known-good file being written.
const lkgTempPrefix = ".lkg-"

// staleTempAge is how old a temporary file must be to count as left by a
// crash. A write takes milliseconds; the margin is for another gateway or
// an older config's app sharing the state dir, whose write may be under way.
const staleTempAge = time.Minute

// lastKnownGoodPath is the file of one deployment's last applied document.
func (a *App) lastKnownGoodPath(name string) string {
	return filepath.Join(a.StateDir, name+".json")
}

// writeLastKnownGood replaces the file atomically (write, then rename), so a
// crash mid-write leaves the previous good file.
func (a *App) writeLastKnownGood(doc configstore.Document) error {
	if err := os.MkdirAll(a.StateDir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	path := a.lastKnownGoodPath(doc.Config.Name)
	tmp, err := os.CreateTemp(a.StateDir, lkgTempPrefix+"*")
	if err != nil {
		return err
	}
	// Synced before the rename, so a crash leaves the old file or the new
	// one, never a torn one.
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (a *App) readLastKnownGood(name string) (configstore.Document, error) {
	var doc configstore.Document
	b, err := os.ReadFile(a.lastKnownGoodPath(name))
	if err != nil {
		return doc, err
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return doc, fmt.Errorf("%s: %w", a.lastKnownGoodPath(name), err)
	}
	if doc.Config.Name != name {
		return doc, fmt.Errorf("%s: holds deployment %q", a.lastKnownGoodPath(name), doc.Config.Name)
	}
	return doc, nil
}

// removeStaleTemps deletes the temporary files of writes a crash cut short;
// nothing else ever would, and each holds a whole document.
func (a *App) removeStaleTemps() {
	entries, err := os.ReadDir(a.StateDir)
	if err != nil {
		return // no state dir yet: nothing left behind
	}
	now := a.now()
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), lkgTempPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < staleTempAge {
			continue
		}
		path := filepath.Join(a.StateDir, e.Name())
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.logger.Warn("removing a leftover last-known-good temporary file", zap.String("path", path), zap.Error(err))
			continue
		}
		a.logger.Info("removed a leftover last-known-good temporary file", zap.String("path", path))
	}
}

// recorder records what this instance applied (the last-known-good file
// and the applied-version report) off the store's watch callback, so a slow
// disk or etcd delays only the record, never the next version. While one
// record is being written, only the newest version of each deployment
// waits: an older one would be overwritten at once.
type recorder struct {
	write func(configstore.Document)
	wake  chan struct{}

	// mu protects pending: per deployment, the newest document not yet
	// handed to write.
	mu      sync.Mutex
	pending map[string]configstore.Document
}

func newRecorder(write func(configstore.Document)) *recorder {
	return &recorder{write: write, wake: make(chan struct{}, 1), pending: map[string]configstore.Document{}}
}

// offer queues doc for recording, replacing an older pending version of
// its deployment; it never blocks.
func (r *recorder) offer(doc configstore.Document) {
	name := doc.Config.Name
	r.mu.Lock()
	if cur, ok := r.pending[name]; !ok || doc.Meta.Version >= cur.Meta.Version {
		r.pending[name] = doc
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run writes what is offered until ctx ends, then what is still pending,
// so a stopping gateway's last-known-good is the version it served last.
func (r *recorder) run(ctx context.Context) {
	for {
		r.flush()
		select {
		case <-ctx.Done():
			r.flush()
			return
		case <-r.wake:
		}
	}
}

// flush writes every pending document, including ones offered meanwhile.
func (r *recorder) flush() {
	for {
		r.mu.Lock()
		names := slices.Sorted(maps.Keys(r.pending))
		if len(names) == 0 {
			r.mu.Unlock()
			return
		}
		doc := r.pending[names[0]]
		delete(r.pending, names[0])
		r.mu.Unlock()
		r.write(doc)
	}
}

// record writes the last-known-good file of an applied version and reports
// it to the store; failures are logged, the next version tries again.
func (a *App) record(doc configstore.Document) {
	name := doc.Config.Name
	if err := a.writeLastKnownGood(doc); err != nil {
		a.logger.Error("writing last-known-good", zap.String("deployment", name), zap.Error(err))
	}
	if a.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.store.ReportApplied(ctx, a.Instance, name, doc.Meta.Version); err != nil {
		a.logger.Debug("reporting applied version", zap.String("deployment", name), zap.Error(err))
	}
}
