package configstore

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
)

// Admins are where each live instance serves its admin API, so that one
// instance can ask the others for what only they hold (the requests each
// recorded for a release):
//
//	<prefix>/admins/<instance>   the admin API's base URL, like http://10.0.0.5:9180
//
// Each lives under the lease of ReportApplied, so it goes when the
// instance does, and is written again under a new lease.

func (s *Store) adminsPrefix() string { return s.prefix + "/admins/" }

// PublishAdmin records that instance serves its admin API at baseURL (an
// http or https URL without a path).
func (s *Store) PublishAdmin(ctx context.Context, instance, baseURL string) error {
	if err := checkInstance(instance); err != nil {
		return err
	}
	if u, err := url.Parse(baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return &gateway.FieldError{Field: "admin_url", Value: strconv.Quote(baseURL), Want: "want http://host:port or https://host:port"}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.lease.keepPut(ctx, s.adminsPrefix()+instance, baseURL)
}

// Admins returns every live instance's admin API base URL, by instance.
func (s *Store) Admins(ctx context.Context) (map[string]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	base := s.adminsPrefix()
	resp, err := s.kv.Get(ctx, base, clientv3.WithPrefix())
	if err != nil {
		return nil, etcdErr("list admin URLs", err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if inst := strings.TrimPrefix(string(kv.Key), base); checkInstance(inst) == nil {
			out[inst] = string(kv.Value)
		}
	}
	return out, nil
}

// keepPut is put for a key that is written once and must outlive a lost
// lease: it is remembered and rewritten under the next lease.
func (k *leaseKeeper) keepPut(ctx context.Context, key, val string) error {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	k.mu.Lock()
	if k.kept == nil {
		k.kept = map[string]string{}
	}
	k.kept[key] = val
	k.mu.Unlock()
	return k.put(ctx, key, val)
}
