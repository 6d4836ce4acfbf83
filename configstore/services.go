package configstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
)

// Services: the configuration of the services behind the gateway (payment
// timeouts, pool sizes, upstream URLs), versioned like deployments:
//
//	<prefix>/services/<name>/current                 the current ServiceDoc (JSON)
//	<prefix>/services/<name>/history/<%020d version> every version's ServiceDoc
//	<prefix>/services/<name>/schema                  the service's JSON Schema, if any
//
// A service's configuration is one JSON object of at most MaxServiceConfig
// bytes; the store does not look inside it beyond its schema. Writes are
// compare-and-swap on current (and on schema, so a document is never
// written against a schema replaced meanwhile), history keys are written
// once, and retention keeps the newest versions, as for deployments.

// MaxServiceConfig is the largest service document, in bytes of compact
// JSON.
const MaxServiceConfig = 256 << 10

// ServiceDoc is one version of a service's configuration.
type ServiceDoc struct {
	Name   string          `json:"name"`
	Meta   Meta            `json:"meta"`
	Config json.RawMessage `json:"config"`
	// Gray, when set, is a gray release: the instances bucketed below its
	// percentage get its document instead of Config (services_gray.go).
	Gray *Gray `json:"gray,omitempty"`
}

// ServiceResult is what a service write did, like Result for deployments.
type ServiceResult struct {
	// Doc is the service's document after the call.
	Doc ServiceDoc
	// Prev is the version Doc replaced (zero when the call created the
	// service); when Wrote is false, Doc itself.
	Prev ServiceDoc
	// Wrote reports whether this call wrote a version.
	Wrote bool
}

func (s *Store) servicesPrefix() string { return s.prefix + "/services/" }

func (s *Store) serviceCurrentKey(name string) string {
	return s.servicesPrefix() + name + "/current"
}

func (s *Store) serviceHistoryPrefix(name string) string {
	return s.servicesPrefix() + name + "/history/"
}

func (s *Store) serviceHistoryKey(name string, v uint64) string {
	return s.serviceHistoryPrefix(name) + fmt.Sprintf("%020d", v)
}

func (s *Store) serviceSchemaKey(name string) string { return s.servicesPrefix() + name + "/schema" }

func decodeServiceDoc(key string, b []byte) (ServiceDoc, error) {
	var d ServiceDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return ServiceDoc{}, fmt.Errorf("configstore: decode %s: %w", key, err)
	}
	return d, nil
}

// serviceState is what a write to a service compares against: its current
// document and schema, and their ModRevisions (0: absent).
type serviceState struct {
	name      string
	doc       ServiceDoc
	rev       int64
	schema    *Schema
	schemaRev int64
}

func (st serviceState) exists() bool { return st.rev != 0 }

// readService reads a service's current document and schema as of one
// revision.
func (s *Store) readService(ctx context.Context, name string) (serviceState, error) {
	resp, err := s.kv.Txn(ctx).Then(
		clientv3.OpGet(s.serviceCurrentKey(name)),
		clientv3.OpGet(s.serviceSchemaKey(name)),
	).Commit()
	if err != nil {
		return serviceState{}, etcdErr("get service "+name, err)
	}
	st := serviceState{name: name}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if st.doc, err = decodeServiceDoc(string(kvs[0].Key), kvs[0].Value); err != nil {
			return serviceState{}, err
		}
		st.rev = kvs[0].ModRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		var stored storedSchema
		if err := json.Unmarshal(kvs[0].Value, &stored); err != nil {
			return serviceState{}, fmt.Errorf("configstore: decode schema of %s: %w", name, err)
		}
		if st.schema, err = CompileSchema(stored.Schema); err != nil {
			return serviceState{}, fmt.Errorf("configstore: schema of %s: %w", name, err)
		}
		st.schemaRev = kvs[0].ModRevision
	}
	return st, nil
}

// ParseServiceConfig checks that b is one JSON object of at most
// MaxServiceConfig bytes and returns it compacted.
func ParseServiceConfig(b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, &gateway.FieldError{Field: "config", Value: "malformed JSON", Want: "want one JSON object: " + err.Error()}
	}
	if buf.Len() > MaxServiceConfig {
		return nil, &gateway.FieldError{Field: "config", Value: strconv.Itoa(buf.Len()) + " bytes",
			Want: "at most " + strconv.Itoa(MaxServiceConfig) + " bytes (256 KiB) of compact JSON"}
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("{")) {
		return nil, &gateway.FieldError{Field: "config", Value: formatValue(jsonTree(buf.Bytes())),
			Want: `want a JSON object, like {"db": {"pool": {"max": 20}}}`}
	}
	return buf.Bytes(), nil
}

// jsonTree decodes JSON already known to be valid, keeping numbers as
// written.
func jsonTree(b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return v
}

// DiffJSON compares two service documents field by field: objects key by
// key, anything else as a value. Paths are dotted, like "db.pool.max".
// Changes are sorted by path.
func DiffJSON(from, to json.RawMessage) []Change {
	a, _ := jsonTree(from).(map[string]any)
	b, _ := jsonTree(to).(map[string]any)
	if a == nil {
		a = map[string]any{}
	}
	if b == nil {
		b = map[string]any{}
	}
	var out []Change
	diffTree("", a, b, &out)
	slices.SortFunc(out, func(x, y Change) int { return strings.Compare(x.Path, y.Path) })
	return out
}

// MergePatch applies an RFC 7396 JSON merge patch to a service document.
// The patch must be a JSON object: a patch that is not would replace the
// whole document with something that is not a configuration.
func MergePatch(doc, patch json.RawMessage) (json.RawMessage, error) {
	p, ok := jsonTree(patch).(map[string]any)
	if !ok {
		return nil, &gateway.FieldError{Field: "patch", Value: formatValue(jsonTree(patch)),
			Want: `want a JSON object (RFC 7396 merge patch), like {"db": {"pool": {"max": 50}}}; null removes a key`}
	}
	d, _ := jsonTree(doc).(map[string]any)
	b, err := json.Marshal(mergePatch(d, p))
	if err != nil {
		return nil, fmt.Errorf("configstore: encode patched document: %w", err)
	}
	return b, nil
}

func mergePatch(target any, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok || t == nil {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// prepared is one version ready to commit: the compares that must hold
// and the operations that write it.
type prepared struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
}

// prepareService builds the next version of a service with content cfg
// (restoredFrom: the version it restores, or 0). It reports wrote false,
// with no operations, when cfg equals the current content.
func (s *Store) prepareService(st serviceState, n next) (ServiceDoc, []Change, prepared, bool, error) {
	cfg, meta, restoredFrom := n.cfg, n.meta, n.from
	cfg, err := ParseServiceConfig(cfg)
	if err != nil {
		return ServiceDoc{}, nil, prepared{}, false, err
	}
	if st.schema != nil {
		if err := st.schema.Validate(cfg); err != nil {
			return ServiceDoc{}, nil, prepared{}, false, err
		}
	}
	if n.gray != nil && st.schema != nil {
		if err := st.schema.Validate(n.gray.Config); err != nil {
			return ServiceDoc{}, nil, prepared{}, false, gateway.PrefixField(err, "gray")
		}
	}
	changes := DiffJSON(st.doc.Config, cfg)
	if st.exists() && len(changes) == 0 && sameGray(st.doc.Gray, n.gray) {
		return st.doc, nil, prepared{}, false, nil
	}
	v := st.doc.Meta.Version + 1
	summary := "created"
	switch {
	case n.summary != "":
		summary = n.summary
	case restoredFrom != 0:
		summary = "restored version " + strconv.FormatUint(restoredFrom, 10)
	case st.exists():
		summary = summarize(changes)
	}
	doc := ServiceDoc{Name: st.name, Meta: s.stamp(meta, s.now(), v, restoredFrom, summary), Config: cfg, Gray: n.gray}
	b, err := json.Marshal(doc)
	if err != nil {
		return ServiceDoc{}, nil, prepared{}, false, fmt.Errorf("configstore: encode service %s version %d: %w", st.name, v, err)
	}
	cur := s.serviceCurrentKey(st.name)
	p := prepared{
		cmps: []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(cur), "=", st.rev),
			clientv3.Compare(clientv3.ModRevision(s.serviceSchemaKey(st.name)), "=", st.schemaRev),
		},
		ops: []clientv3.Op{clientv3.OpPut(cur, string(b)), clientv3.OpPut(s.serviceHistoryKey(st.name, v), string(b))},
	}
	if keep := uint64(s.retention); v > keep {
		p.ops = append(p.ops, clientv3.OpDelete(s.serviceHistoryPrefix(st.name), clientv3.WithRange(s.serviceHistoryKey(st.name, v-keep+1))))
	}
	return doc, changes, p, true, nil
}

// next is a service's next version as a write computes it: its content,
// its gray release, the version it restores (0 for an edit), and a summary
// when the diff does not say what happened (gray steps).
type next struct {
	cfg     json.RawMessage
	gray    *Gray
	meta    Meta
	from    uint64
	summary string
}

// serviceNext computes a service's next version from its current state.
// It may run more than once.
type serviceNext func(ctx context.Context, st serviceState) (next, error)

// writeService is the compare-and-swap loop of every single-service write.
func (s *Store) writeService(ctx context.Context, name string, ifVersion uint64, meta Meta, wo writeOptions, mustExist bool, nextVersion serviceNext) (ServiceResult, error) {
	if err := checkName(name); err != nil {
		return ServiceResult{}, err
	}
	if err := checkMeta(meta); err != nil {
		return ServiceResult{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		st, err := s.readService(ctx, name)
		if err != nil {
			return ServiceResult{}, err
		}
		if mustExist && !st.exists() {
			return ServiceResult{}, &NotFoundError{Deployment: name, Kind: "service"}
		}
		if wo.pinned && ifVersion == 0 {
			ifVersion = st.doc.Meta.Version
			wo.pinned = false
		}
		if ifVersion != 0 && st.doc.Meta.Version != ifVersion {
			return ServiceResult{}, &ConflictError{Deployment: name, Service: true, Want: ifVersion, Current: st.doc.Meta.Version}
		}
		n, err := nextVersion(ctx, st)
		if err != nil {
			return ServiceResult{}, err
		}
		n.meta = meta
		doc, _, p, wrote, err := s.prepareService(st, n)
		if err != nil || !wrote {
			return ServiceResult{Doc: doc, Prev: doc}, err
		}
		resp, err := s.kv.Txn(ctx).If(wo.leader.fence(p.cmps...)...).Then(p.ops...).Else(wo.leader.check()...).Commit()
		if err != nil {
			return ServiceResult{}, etcdErr("write service "+name, err)
		}
		if resp.Succeeded {
			return ServiceResult{Doc: doc, Prev: st.doc, Wrote: true}, nil
		}
		if err := wo.leader.deposed(resp); err != nil {
			return ServiceResult{}, err
		}
		if ifVersion == 0 {
			if err := sleep(ctx, conflictBackoff(attempt)); err != nil {
				return ServiceResult{}, fmt.Errorf("%w: service %q: lost to other writers %d times until %w", ErrUnavailable, name, attempt, err)
			}
		}
		// With ifVersion, the next read reports the conflict (or, if only
		// the schema changed, writes against the new one).
	}
}

// PutService writes cfg as the next version of a service, creating it at
// version 1 if it does not exist. ifVersion, when not 0, must be the
// current version (If-Match); otherwise a lost race is retried. A document
// equal to the current one writes nothing.
func (s *Store) PutService(ctx context.Context, name string, cfg json.RawMessage, ifVersion uint64, meta Meta) (ServiceResult, error) {
	return s.writeService(ctx, name, ifVersion, meta, writeOptions{}, false, func(_ context.Context, st serviceState) (next, error) {
		return next{cfg: cfg, gray: st.doc.Gray}, nil
	})
}

// PatchService applies an RFC 7396 merge patch to a service's current
// document. The service must exist.
func (s *Store) PatchService(ctx context.Context, name string, patch json.RawMessage, ifVersion uint64, meta Meta) (ServiceResult, error) {
	if _, err := MergePatch(nil, patch); err != nil {
		return ServiceResult{}, err
	}
	return s.writeService(ctx, name, ifVersion, meta, writeOptions{}, true, func(_ context.Context, st serviceState) (next, error) {
		cfg, err := MergePatch(st.doc.Config, patch)
		return next{cfg: cfg, gray: st.doc.Gray}, err
	})
}

// RestoreService writes a new version with version v's content. With
// Fence, a deposed leader writes nothing and gets ErrNotLeader.
func (s *Store) RestoreService(ctx context.Context, name string, v, ifVersion uint64, meta Meta, opts ...WriteOption) (ServiceResult, error) {
	return s.writeService(ctx, name, ifVersion, meta, writeOpts(opts), true, func(ctx context.Context, _ serviceState) (next, error) {
		src, err := s.serviceVersion(ctx, name, v)
		return next{cfg: src.Config, gray: src.Gray, from: v}, err
	})
}

// RollbackService restores the version before the current one, pinned to
// the version it reads (like Rollback).
func (s *Store) RollbackService(ctx context.Context, name string, ifVersion uint64, meta Meta) (ServiceResult, error) {
	return s.writeService(ctx, name, ifVersion, meta, writeOptions{pinned: true}, true, func(ctx context.Context, st serviceState) (next, error) {
		cur := st.doc.Meta.Version
		if cur < 2 {
			return next{}, &NotFoundError{Deployment: name, Kind: "service", What: "version before " + strconv.FormatUint(cur, 10)}
		}
		src, err := s.serviceVersion(ctx, name, cur-1)
		return next{cfg: src.Config, gray: src.Gray, from: cur - 1}, err
	})
}

// GetService returns a service's current version, or a *NotFoundError.
func (s *Store) GetService(ctx context.Context, name string) (ServiceDoc, error) {
	if err := checkName(name); err != nil {
		return ServiceDoc{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	d, _, err := s.getService(ctx, name)
	return d, err
}

// getService reads the current document and the revision it was read at.
func (s *Store) getService(ctx context.Context, name string) (ServiceDoc, int64, error) {
	key := s.serviceCurrentKey(name)
	resp, err := s.kv.Get(ctx, key)
	if err != nil {
		return ServiceDoc{}, 0, etcdErr("get service "+name, err)
	}
	if len(resp.Kvs) == 0 {
		return ServiceDoc{}, resp.Header.Revision, &NotFoundError{Deployment: name, Kind: "service"}
	}
	d, err := decodeServiceDoc(key, resp.Kvs[0].Value)
	return d, resp.Header.Revision, err
}

// ServiceVersion returns version v of a service, or a *NotFoundError.
func (s *Store) ServiceVersion(ctx context.Context, name string, v uint64) (ServiceDoc, error) {
	if err := checkName(name); err != nil {
		return ServiceDoc{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.serviceVersion(ctx, name, v)
}

func (s *Store) serviceVersion(ctx context.Context, name string, v uint64) (ServiceDoc, error) {
	what := "version " + strconv.FormatUint(v, 10)
	if v == 0 {
		return ServiceDoc{}, &NotFoundError{Deployment: name, Kind: "service", What: what}
	}
	key := s.serviceHistoryKey(name, v)
	resp, err := s.kv.Get(ctx, key)
	if err != nil {
		return ServiceDoc{}, etcdErr("get service "+name+" "+what, err)
	}
	if len(resp.Kvs) == 0 {
		return ServiceDoc{}, &NotFoundError{Deployment: name, Kind: "service", What: what}
	}
	return decodeServiceDoc(key, resp.Kvs[0].Value)
}

// ServiceHistory returns the metadata of a service's retained versions,
// newest first, at most limit (all when limit <= 0), or a *NotFoundError.
func (s *Store) ServiceHistory(ctx context.Context, name string, limit int) ([]Meta, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return s.historyMetas(ctx, s.serviceHistoryPrefix(name), limit, "history of service "+name, &NotFoundError{Deployment: name, Kind: "service"})
}

// ListServices returns every service's current document, sorted by name.
// Like List, it skips over each service's history, so its cost grows with
// the number of services.
func (s *Store) ListServices(ctx context.Context) ([]ServiceDoc, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	for {
		docs, err := s.listServicesAt(ctx)
		if !errors.Is(err, rpctypes.ErrCompacted) {
			return docs, err
		}
	}
}

func (s *Store) listServicesAt(ctx context.Context) ([]ServiceDoc, error) {
	base := s.servicesPrefix()
	end := clientv3.GetPrefixRangeEnd(base)
	start := base
	var rev int64
	var docs []ServiceDoc
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, start, opts...)
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil, err
		}
		if err != nil {
			return nil, etcdErr("list services", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		if len(resp.Kvs) == 0 {
			return docs, nil
		}
		key := string(resp.Kvs[0].Key)
		name, _, _ := strings.Cut(strings.TrimPrefix(key, base), "/")
		start = clientv3.GetPrefixRangeEnd(base + name + "/")
		// current sorts first; a service with only a schema has no document.
		if key != s.serviceCurrentKey(name) {
			continue
		}
		if d, err := decodeServiceDoc(key, resp.Kvs[0].Value); err == nil && d.Name == name {
			docs = append(docs, d)
		}
	}
}
