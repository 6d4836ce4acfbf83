package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
