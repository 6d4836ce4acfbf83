package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/affected"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/release"
)

// affectedInterval is how often each instance checks the releases, to
// start and stop recording their requests: one small read of the store a
// second (the releases are listed again only when one changed), so a
// release records from about a second after it starts, and stops about a
// second after its rollback finishes.
const affectedInterval = time.Second

// republishAdmin is how often an instance writes its admin API's address
// again (see runAffected).
const republishAdmin = time.Minute

// runAffected keeps every served deployment's recording in step with the
// releases in the store and the live flags, and publishes where this
// instance's admin API is, until ctx ends.
func (a *App) runAffected(ctx context.Context) {
	t := time.NewTicker(affectedInterval)
	defer t.Stop()
	var published time.Time
	var known releasesSeen
	for {
		// Published again every minute, not once: a key lost with a lease
		// (an etcd outage) would otherwise leave this instance missing
		// from every merge until the next reload.
		if a.adminURL != "" && time.Since(published) >= republishAdmin {
			if err := a.store.PublishAdmin(ctx, a.Instance, a.adminURL); err != nil {
				a.logger.Debug("publishing the admin API's URL", zap.Error(err))
			} else {
				published = time.Now()
			}
		}
		known.refresh(ctx, a.store, a.logger)
		if known.listed {
			// Not before: a reload while the store is away must not stop
			// what the previous config's loop had recording.
			a.refreshAffected(known.byDeployment)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// releasesSeen is the releases as last listed, by deployment.
type releasesSeen struct {
	mark         configstore.ReleasesMark
	listed       bool
	byDeployment map[string][]release.Release
}

// refresh lists the releases again if their mark moved. A store it cannot
// read changes nothing: the releases recording go on recording.
func (rs *releasesSeen) refresh(ctx context.Context, store *configstore.Store, log *zap.Logger) {
	mark, err := store.ReleasesMark(ctx)
	if err != nil {
		log.Debug("reading releases for their affected requests", zap.Error(err))
		return
	}
	if rs.listed && mark == rs.mark {
		return
	}
	rels, err := store.ListReleases(ctx, "")
	if err != nil {
		log.Debug("reading releases for their affected requests", zap.Error(err))
		return
	}
	rs.mark, rs.listed = mark, true
	rs.byDeployment = map[string][]release.Release{}
	for _, r := range rels {
		rs.byDeployment[r.Deployment] = append(rs.byDeployment[r.Deployment], r)
	}
}

// refreshAffected gives each served deployment the rules of its releases
// that record, under its live flags.
func (a *App) refreshAffected(byDeployment map[string][]release.Release) {
	deployments.Range(func(k, v any) bool {
		entry := v.(deploymentEntry)
		var flags map[string]float64
		if snap := entry.Snapshot(); snap != nil {
			cfg := snap.Config()
			flags = make(map[string]float64, len(cfg.Flags))
			for name, f := range cfg.Flags {
				flags[name] = f.Percent
			}
		}
		entry.affected.Update(affected.Rules(byDeployment[k.(string)], flags), a.AffectedCapacity)
		return true
	})
}

// checkAdminURL accepts what PublishAdmin will: http or https, a host and
// no path.
func checkAdminURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return fmt.Errorf("admin_url %q: want http://host:port or https://host:port, where the other instances reach this one's admin API", v)
	}
	return nil
}

// affectedLog is what this instance recorded of a release of deployment.
func (a *App) affectedLog(deployment, id string) (affected.Log, bool) {
	entry, ok := lookupEntry(deployment)
	if !ok {
		return affected.Log{}, false
	}
	return entry.affected.Log(id)
}

// advertisedAdmin is the URL other instances reach an admin API listening
// on addr at: the address itself or, when it listens on every address,
// this host's first global unicast address (an IP address, which the
// admin API's Host check accepts as the address a request arrived on),
// else its name.
func advertisedAdmin(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = hostAddress()
		if host == "" {
			return ""
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// hostAddress is this host's first global unicast address, IPv4 first,
// or its name.
func hostAddress() string {
	var v6 string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			if ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
			if v6 == "" {
				v6 = ipn.IP.String()
			}
		}
	}
	if v6 != "" {
		return v6
	}
	name, _ := os.Hostname()
	return name
}

// recordAffected records a request that may have written data, for every
// release that served it. Only a recorded request pays for its request
// id (Caddy's UUID is made on first use).
func (h *Handler) recordAffected(snap *gateway.Snapshot, d gateway.Decision, subject string, r *http.Request, start time.Time, err error) {
	set := h.affected.Active()
	if set == nil {
		return
	}
	pool := &snap.Pools()[d.Pool]
	flags := snap.FlagsHeader(d.Flags)
	if !set.Matches(pool.Name, flags) {
		return
	}
	status, _ := proxied(r)
	var he caddyhttp.HandlerError
	if status == 0 && errors.As(err, &he) {
		status = he.StatusCode
	}
	set.Add(affected.Entry{Time: start, Subject: kept(subject, 256), Method: kept(r.Method, 16), Path: kept(r.URL.Path, 1024),
		Status: status, RequestID: kept(requestID(r), 128), Pool: pool.Name, Flags: flags})
}

// kept is what an entry keeps of a request's string: a copy, so the entry
// does not hold the request line or the Cookie header it was cut from, and
// at most max bytes of it, so 100,000 entries of a client's longest URLs
// or cookies cost megabytes, not gigabytes.
func kept(s string, max int) string {
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return strings.Clone(s)
}

// requestID is the client's X-Request-ID, or Caddy's {http.request.uuid},
// which Caddy also writes to the request's access log entry.
func requestID(r *http.Request) string {
	if v := r.Header.Get("X-Request-ID"); v != "" {
		return v
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	v, _ := repl.Get("http.request.uuid")
	s, _ := v.(string)
	return s
}
