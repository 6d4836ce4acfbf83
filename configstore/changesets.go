package configstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
)

// Change sets: one change over several services and deployments, written
// in one etcd transaction (all or nothing), recorded under
//
//	<prefix>/changesets/<id>
//
// Every version a change set writes carries its id (Meta.ChangeSet), and
// RevertChangeSet puts every target back to the version it had before, in
// one transaction again.

// MaxChangeSetTargets bounds the targets of one change set: each takes up
// to three operations of one etcd transaction, which etcd caps at 128.
const MaxChangeSetTargets = 32

// ChangeSpec is one target of a change set: a service or a deployment,
// with an RFC 7396 merge patch, or (services only) a whole document.
type ChangeSpec struct {
	Service    string          `json:"service,omitempty"`
	Deployment string          `json:"deployment,omitempty"`
	Patch      json.RawMessage `json:"patch,omitempty"`
	Config     json.RawMessage `json:"config,omitempty"`
}

func (c ChangeSpec) target() string {
	if c.Service != "" {
		return "service " + c.Service
	}
	return "deployment " + c.Deployment
}

// ChangeSetEntry is what a change set did to one target.
type ChangeSetEntry struct {
	Service    string `json:"service,omitempty"`
	Deployment string `json:"deployment,omitempty"`
	// From is the version before the change set, To the one it wrote.
	From    uint64 `json:"from"`
	To      uint64 `json:"to"`
	Summary string `json:"summary"`
}

// ChangeSet is one applied change set.
type ChangeSet struct {
	ID      string           `json:"id"`
	Time    time.Time        `json:"time"`
	Author  string           `json:"author"`
	Reason  string           `json:"reason"`
	Source  Source           `json:"source"`
	Entries []ChangeSetEntry `json:"entries"`
	// RevertOf is the change set this one reverted.
	RevertOf string `json:"revert_of,omitempty"`
	// RevertedBy is the change set that reverted this one.
	RevertedBy string `json:"reverted_by,omitempty"`
}

// RevertConflictError refuses a revert because a target has changed since
// the change set wrote it (or the change set was reverted already).
type RevertConflictError struct {
	ChangeSet string
	// Service or Deployment names the target that moved on.
	Service, Deployment string
	// Wrote is the version the change set wrote, Current the target's
	// version now.
	Wrote, Current uint64
	// RevertedBy is set when the change set was reverted already.
	RevertedBy string
}

func (e *RevertConflictError) Error() string {
	if e.RevertedBy != "" {
		return fmt.Sprintf("change set %s was reverted already by %s", e.ChangeSet, e.RevertedBy)
	}
	what, name := "service", e.Service
	if name == "" {
		what, name = "deployment", e.Deployment
	}
	return fmt.Sprintf("%s %q changed after change set %s: it wrote version %d, the %s is at version %d; revert with force to overwrite",
		what, name, e.ChangeSet, e.Wrote, what, e.Current)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *RevertConflictError) Is(target error) bool { return target == ErrConflict }

func (s *Store) changeSetsPrefix() string { return s.prefix + "/changesets/" }

func newChangeSetID(now time.Time) string {
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	return fmt.Sprintf("%020d-%s", now.UnixNano(), hex.EncodeToString(suffix[:]))
}

func checkChangeSpecs(specs []ChangeSpec) error {
	if len(specs) == 0 {
		return &gateway.FieldError{Field: "changes", Value: "[]", Want: `want at least one change, like [{"service": "payments", "patch": {...}}]`}
	}
	if len(specs) > MaxChangeSetTargets {
		return &gateway.FieldError{Field: "changes", Value: strconv.Itoa(len(specs)) + " changes", Want: "at most " + strconv.Itoa(MaxChangeSetTargets)}
	}
	seen := map[string]int{}
	for i, c := range specs {
		field := "changes[" + strconv.Itoa(i) + "]"
		if (c.Service == "") == (c.Deployment == "") {
			return &gateway.FieldError{Field: field, Value: "service " + strconv.Quote(c.Service) + ", deployment " + strconv.Quote(c.Deployment),
				Want: "want exactly one of service and deployment"}
		}
		name, nf := c.Service, ".service"
		if name == "" {
			name, nf = c.Deployment, ".deployment"
		}
		if err := gateway.CheckName(field+nf, name); err != nil {
			return err
		}
		hasPatch, hasConfig := len(bytes.TrimSpace(c.Patch)) > 0, len(bytes.TrimSpace(c.Config)) > 0
		if hasPatch == hasConfig || (c.Deployment != "" && hasConfig) {
			return &gateway.FieldError{Field: field, Value: c.target(),
				Want: "want a patch (RFC 7396 merge patch), or for a service a whole config, not both"}
		}
		if hasPatch {
			if _, err := MergePatch(nil, c.Patch); err != nil {
				return &gateway.FieldError{Field: field + ".patch", Value: formatValue(jsonTree(c.Patch)), Want: "want a JSON object (RFC 7396 merge patch)"}
			}
		}
		if prev, ok := seen[c.target()]; ok {
			return &gateway.FieldError{Field: field, Value: c.target(), Want: "each target once; it is also changes[" + strconv.Itoa(prev) + "]"}
		}
		seen[c.target()] = i
	}
	return nil
}

// target is one service or deployment a change set writes, read and
// prepared.
type csTarget struct {
	entry ChangeSetEntry
	prep  prepared
	wrote bool
}

// ApplyChangeSet applies specs in one transaction: every target gets a new
// version carrying the change set's id, or none does. Targets must exist.
// A target the change leaves as it is gets no version and no entry; a
// change set that changes nothing is a *gateway.FieldError. A lost race is
// read again and retried until the store's timeout.
func (s *Store) ApplyChangeSet(ctx context.Context, specs []ChangeSpec, meta Meta) (ChangeSet, error) {
	if err := checkChangeSpecs(specs); err != nil {
		return ChangeSet{}, err
	}
	if err := checkMeta(meta); err != nil {
		return ChangeSet{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	now := s.now().UTC().Round(0)
	cs := ChangeSet{ID: newChangeSetID(now), Time: now, Author: meta.Author, Reason: meta.Reason, Source: meta.Source}
	meta.ChangeSet = cs.ID
	return s.commitChangeSet(ctx, cs, "", func(ctx context.Context) ([]csTarget, error) {
		targets := make([]csTarget, 0, len(specs))
		for i, c := range specs {
			t, err := s.prepareSpec(ctx, c, meta)
			if err != nil {
				return nil, gateway.PrefixField(err, "changes["+strconv.Itoa(i)+"]")
			}
			targets = append(targets, t)
		}
		return targets, nil
	})
}

func (s *Store) prepareSpec(ctx context.Context, c ChangeSpec, meta Meta) (csTarget, error) {
	if c.Service != "" {
		st, err := s.readService(ctx, c.Service)
		if err != nil {
			return csTarget{}, err
		}
		if !st.exists() {
			return csTarget{}, &NotFoundError{Deployment: c.Service, Kind: "service"}
		}
		cfg := c.Config
		if len(c.Patch) > 0 {
			if cfg, err = MergePatch(st.doc.Config, c.Patch); err != nil {
				return csTarget{}, err
			}
		}
		return s.serviceTarget(st, next{cfg: cfg, gray: st.doc.Gray, meta: meta})
	}
	cur, modRev, err := s.current(ctx, c.Deployment)
	if err != nil {
		return csTarget{}, err
	}
	cfg, err := patchConfig(cur.Config, c.Patch)
	if err != nil {
		return csTarget{}, err
	}
	return s.deploymentTarget(cur, modRev, cfg, meta, 0)
}

func (s *Store) serviceTarget(st serviceState, n next) (csTarget, error) {
	doc, _, p, wrote, err := s.prepareService(st, n)
	if err != nil {
		return csTarget{}, err
	}
	return csTarget{entry: ChangeSetEntry{Service: st.name, From: st.doc.Meta.Version, To: doc.Meta.Version, Summary: doc.Meta.Summary}, prep: p, wrote: wrote}, nil
}

// patchConfig applies a merge patch to a deployment's routing document.
func patchConfig(cur gateway.Config, patch json.RawMessage) (gateway.Config, error) {
	b, err := json.Marshal(cur)
	if err != nil {
		return gateway.Config{}, fmt.Errorf("configstore: encode %s: %w", cur.Name, err)
	}
	out, err := MergePatch(b, patch)
	if err != nil {
		return gateway.Config{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	var cfg gateway.Config
	if err := dec.Decode(&cfg); err != nil {
		return gateway.Config{}, &gateway.FieldError{Field: "patch", Value: formatValue(jsonTree(patch)), Want: "want a patch of the deployment's document: " + err.Error()}
	}
	return cfg, nil
}

// deploymentTarget prepares a deployment's next version as write does,
// for a transaction of several targets.
func (s *Store) deploymentTarget(cur Document, modRev int64, cfg gateway.Config, meta Meta, from uint64) (csTarget, error) {
	name := cur.Config.Name
	if cfg.Name != name {
		return csTarget{}, &gateway.FieldError{Field: "name", Value: strconv.Quote(cfg.Name), Want: "a document keeps its deployment's name, " + strconv.Quote(name)}
	}
	entry := ChangeSetEntry{Deployment: name, From: cur.Meta.Version, To: cur.Meta.Version}
	changes := Diff(cur.Config, cfg)
	if len(changes) == 0 {
		return csTarget{entry: entry}, nil
	}
	v := cur.Meta.Version + 1
	cfg.Version = v
	if err := cfg.Validate(); err != nil {
		return csTarget{}, err
	}
	summary := summarize(changes)
	if from != 0 {
		summary = "restored version " + strconv.FormatUint(from, 10)
	}
	now := s.now()
	doc := Document{Meta: s.stamp(meta, now, v, from, summary), Config: cfg, Retained: retention(cur, cfg, now, from == 0)}
	b, err := json.Marshal(doc)
	if err != nil {
		return csTarget{}, fmt.Errorf("configstore: encode %s version %d: %w", name, v, err)
	}
	key := s.currentKey(name)
	p := prepared{
		cmps: []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", modRev)},
		ops:  []clientv3.Op{clientv3.OpPut(key, string(b)), clientv3.OpPut(s.historyKey(name, v), string(b))},
	}
	if keep := uint64(s.retention); v > keep {
		p.ops = append(p.ops, clientv3.OpDelete(s.historyPrefix(name), clientv3.WithRange(s.historyKey(name, v-keep+1))))
	}
	entry.To, entry.Summary = v, summary
	return csTarget{entry: entry, prep: p, wrote: true}, nil
}

// commitChangeSet prepares the targets and commits them with the change
// set's record in one transaction, preparing again after a lost race.
// revertOf, when set, is the change set being reverted: its record is
// marked in the same transaction, compared on its revision.
func (s *Store) commitChangeSet(ctx context.Context, cs ChangeSet, revertOf string, prepare func(context.Context) ([]csTarget, error)) (ChangeSet, error) {
	for attempt := 1; ; attempt++ {
		targets, err := prepare(ctx)
		if err != nil {
			return ChangeSet{}, err
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		cs.Entries = cs.Entries[:0]
		for _, t := range targets {
			if !t.wrote {
				continue
			}
			cs.Entries = append(cs.Entries, t.entry)
			cmps = append(cmps, t.prep.cmps...)
			ops = append(ops, t.prep.ops...)
		}
		if len(cs.Entries) == 0 {
			return ChangeSet{}, &gateway.FieldError{Field: "changes", Value: "no difference", Want: "a change set must change at least one target"}
		}
		b, err := json.Marshal(cs)
		if err != nil {
			return ChangeSet{}, fmt.Errorf("configstore: encode change set: %w", err)
		}
		key := s.changeSetsPrefix() + cs.ID
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		ops = append(ops, clientv3.OpPut(key, string(b)))
		if revertOf != "" {
			orig, rev, err := s.getChangeSet(ctx, revertOf)
			if err != nil {
				return ChangeSet{}, err
			}
			if orig.RevertedBy != "" {
				return ChangeSet{}, &RevertConflictError{ChangeSet: revertOf, RevertedBy: orig.RevertedBy}
			}
			orig.RevertedBy = cs.ID
			ob, err := json.Marshal(orig)
			if err != nil {
				return ChangeSet{}, fmt.Errorf("configstore: encode change set: %w", err)
			}
			okey := s.changeSetsPrefix() + revertOf
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(okey), "=", rev))
			ops = append(ops, clientv3.OpPut(okey, string(ob)))
		}
		resp, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return ChangeSet{}, etcdErr("write change set "+cs.ID, err)
		}
		if resp.Succeeded {
			return cs, nil
		}
		if err := sleep(ctx, conflictBackoff(attempt)); err != nil {
			return ChangeSet{}, fmt.Errorf("%w: change set: lost to other writers %d times until %w", ErrUnavailable, attempt, err)
		}
	}
}

func (s *Store) getChangeSet(ctx context.Context, id string) (ChangeSet, int64, error) {
	resp, err := s.kv.Get(ctx, s.changeSetsPrefix()+id)
	if err != nil {
		return ChangeSet{}, 0, etcdErr("get change set "+id, err)
	}
	if len(resp.Kvs) == 0 {
		return ChangeSet{}, 0, &NotFoundError{Deployment: id, Kind: "change set"}
	}
	var cs ChangeSet
	if err := json.Unmarshal(resp.Kvs[0].Value, &cs); err != nil {
		return ChangeSet{}, 0, fmt.Errorf("configstore: decode change set %s: %w", id, err)
	}
	return cs, resp.Kvs[0].ModRevision, nil
}

func checkChangeSetID(id string) error {
	ok := len(id) > 0 && len(id) <= 64
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r == '-') {
			ok = false
		}
	}
	if !ok {
		return &gateway.FieldError{Field: "id", Value: strconv.Quote(id), Want: "want a change set id, like 01764441480123456789-a1b2c3d4"}
	}
	return nil
}

// GetChangeSet returns one change set, or a *NotFoundError.
func (s *Store) GetChangeSet(ctx context.Context, id string) (ChangeSet, error) {
	if err := checkChangeSetID(id); err != nil {
		return ChangeSet{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cs, _, err := s.getChangeSet(ctx, id)
	return cs, err
}

// ListChangeSets returns change sets newest first, at most limit (all when
// limit <= 0).
func (s *Store) ListChangeSets(ctx context.Context, limit int) ([]ChangeSet, error) {
	kvs, err := s.newest(ctx, s.changeSetsPrefix(), limit, "list change sets")
	if err != nil {
		return nil, err
	}
	out := make([]ChangeSet, 0, len(kvs))
	for _, kv := range kvs {
		var cs ChangeSet
		if json.Unmarshal(kv.Value, &cs) == nil {
			out = append(out, cs)
		}
	}
	return out, nil
}

// RevertChangeSet puts every target of change set id back to the content
// it had before, as new versions restoring those versions, in one
// transaction that is itself a change set (RevertOf id). A target that has
// changed since the change set wrote it is a *RevertConflictError naming
// it and its version, unless force, which overwrites the later change.
// A change set reverted already is a *RevertConflictError too.
func (s *Store) RevertChangeSet(ctx context.Context, id string, force bool, meta Meta) (ChangeSet, error) {
	if err := checkChangeSetID(id); err != nil {
		return ChangeSet{}, err
	}
	if err := checkMeta(meta); err != nil {
		return ChangeSet{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	orig, _, err := s.getChangeSet(ctx, id)
	if err != nil {
		return ChangeSet{}, err
	}
	if orig.RevertedBy != "" {
		return ChangeSet{}, &RevertConflictError{ChangeSet: id, RevertedBy: orig.RevertedBy}
	}
	now := s.now().UTC().Round(0)
	cs := ChangeSet{ID: newChangeSetID(now), Time: now, Author: meta.Author, Reason: meta.Reason, Source: meta.Source, RevertOf: id}
	meta.ChangeSet = cs.ID
	return s.commitChangeSet(ctx, cs, id, func(ctx context.Context) ([]csTarget, error) {
		targets := make([]csTarget, 0, len(orig.Entries))
		for _, e := range orig.Entries {
			t, err := s.revertTarget(ctx, id, e, force, meta)
			if err != nil {
				return nil, err
			}
			targets = append(targets, t)
		}
		return targets, nil
	})
}

func (s *Store) revertTarget(ctx context.Context, id string, e ChangeSetEntry, force bool, meta Meta) (csTarget, error) {
	if e.Service != "" {
		st, err := s.readService(ctx, e.Service)
		if err != nil {
			return csTarget{}, err
		}
		if st.doc.Meta.Version != e.To && !force {
			return csTarget{}, &RevertConflictError{ChangeSet: id, Service: e.Service, Wrote: e.To, Current: st.doc.Meta.Version}
		}
		src, err := s.serviceVersion(ctx, e.Service, e.From)
		if err != nil {
			return csTarget{}, err
		}
		return s.serviceTarget(st, next{cfg: src.Config, gray: src.Gray, meta: meta, from: e.From})
	}
	cur, modRev, err := s.current(ctx, e.Deployment)
	if err != nil {
		return csTarget{}, err
	}
	if cur.Meta.Version != e.To && !force {
		return csTarget{}, &RevertConflictError{ChangeSet: id, Deployment: e.Deployment, Wrote: e.To, Current: cur.Meta.Version}
	}
	src, err := s.version(ctx, e.Deployment, e.From)
	if err != nil {
		return csTarget{}, err
	}
	return s.deploymentTarget(cur, modRev, src.Config, meta, e.From)
}
