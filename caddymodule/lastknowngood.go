package caddymodule

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/a8e2c47e/switchback/configstore"
)

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
	tmp, err := os.CreateTemp(a.StateDir, ".lkg-*")
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
