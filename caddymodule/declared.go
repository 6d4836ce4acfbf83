package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/a8e2c47e/switchback/gateway"
)

// declarations records which handler of each loaded config declared a
// deployment first. All handlers of one deployment share one document, so
// a second declaration with other settings in the same config would be
// silently ignored: its site would proxy to the first one's pools. During
// a reload the old and the new config's handlers coexist and may differ;
// that is an update, not a clash, so the record is per config.
var declarations = struct {
	mu sync.Mutex // protects m
	m  map[declarationKey]declaration
}{m: map[declarationKey]declaration{}}

type declarationKey struct {
	config     caddy.Module // the app at the root of the config's module tree
	deployment string
}

type declaration struct {
	owner    *Handler
	settings []byte // the handler's JSON
	site     string // where it is served, for messages
}

// declare records h as its config's declaration of its deployment, or
// refuses it when the config already declares the deployment otherwise.
// An identical declaration is the Caddyfile's doing: one site block with
// several addresses becomes one copy of the handler per server.
func (h *Handler) declare(ctx caddy.Context) error {
	mods := ctx.Modules()
	if len(mods) == 0 {
		return nil // provisioned outside a config: nothing to clash with
	}
	settings, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("switchback %s: %w", h.Deployment, err)
	}
	key := declarationKey{config: mods[0], deployment: h.Deployment}
	declarations.mu.Lock()
	defer declarations.mu.Unlock()
	first, ok := declarations.m[key]
	site := siteOf(ctx)
	if !ok {
		declarations.m[key] = declaration{owner: h, settings: settings, site: site}
		return nil
	}
	if bytes.Equal(first.settings, settings) {
		return nil
	}
	return &gateway.FieldError{Field: "deployment", Value: h.Deployment,
		Want: fmt.Sprintf("declared twice in this config with different settings (first on %s with %s; again on %s with %s); give each site its own deployment name, or serve both addresses from one declaration",
			first.site, describePools(first.owner.Pools), site, describePools(h.Pools))}
}

// siteOf names the server a handler is provisioned in by its addresses.
func siteOf(ctx caddy.Context) string {
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && len(srv.Listen) > 0 {
		return strings.Join(srv.Listen, ", ")
	}
	return "an unnamed server"
}

// undeclare drops the records h made, so the deployment can be declared
// again once h's config is unloaded (or failed to load).
func (h *Handler) undeclare() {
	declarations.mu.Lock()
	defer declarations.mu.Unlock()
	maps.DeleteFunc(declarations.m, func(_ declarationKey, d declaration) bool { return d.owner == h })
}

// describePools writes pools for a message: "blue=127.0.0.1:9001 green=…".
func describePools(pools map[string]gateway.Pool) string {
	parts := make([]string, 0, len(pools))
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		parts = append(parts, name+"="+strings.Join(pools[name].Upstreams, ","))
	}
	return "pools " + strings.Join(parts, " ")
}
