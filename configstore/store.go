// Package configstore keeps versioned deployment documents in etcd: every
// change to a deployment's gateway.Config is a new, numbered, attributed
// version; the current one is what every gateway instance serves, and any
// earlier one can be restored. It is the only package that speaks to etcd:
// Dial connects (or starts an embedded etcd), Lead elects one instance for
// a job, and records keep other small state (rollouts) beside the
// documents.
//
// # Keys
//
// Under a prefix (default "/switchback"):
//
//	<prefix>/deployments/<name>/current                 the current Document (JSON)
//	<prefix>/deployments/<name>/history/<%020d version> every version's Document (JSON)
//	<prefix>/instances/<instance>/<name>                 version an instance applied (decimal), under a lease
//	<prefix>/events/<id>                                 the events log (events.go)
//	<prefix>/services/<name>/...                         service configuration documents (services.go)
//	<prefix>/changesets/<id>                             change sets (changesets.go)
//	<prefix>/releases/<id>                               release records (releases.go)
//	<prefix>/<kind>/<name>                               a record, such as kind rollouts (records.go)
//	<prefix>/<role>-leader/<lease>                       a leadership election (lead.go)
//
// A version is written in one transaction that puts current and the new
// history key, and compares current's ModRevision with the one it read
// (compare-and-swap), so two writers never both get version n+1. History
// keys are written once and never changed, so etcd compaction, which drops
// only the old revisions of a key, never loses a version. Retention deletes
// history keys older than the newest n versions in the same transaction.
//
// Beside a version's content (Config) the Document carries state the store
// maintains itself: which pools are retained rollback targets
// (retention.go). Diff, Restore and Rollback work on the content alone.
//
// # Errors
//
// Unknown deployments, versions and records are a *NotFoundError
// (ErrNotFound), a stale If-Match or record revision is a *ConflictError
// (ErrConflict), an unreachable etcd is ErrUnavailable (wrapping the
// cause), a fenced write by a deposed leader is ErrNotLeader, and a
// rejected document or argument is the *gateway.FieldError that names the
// field, the value and what is accepted. A rejected call writes nothing.
//
// # Imports
//
// Of this module, configstore imports gateway (the document it stores) and
// nothing that decides: not rollout, guard or caddymodule, and not Caddy.
// Every other package, tests included, reaches etcd through configstore's
// API (tests through internal/testharness/etcdtest); internal/boundaries
// pins this.
package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
)

// Source says which path a version came in by.
type Source string

// Sources of a version.
const (
	SourceAPI       Source = "api"
	SourceCLI       Source = "cli"
	SourceGuard     Source = "guard"
	SourceBootstrap Source = "bootstrap"
	// SourceRollout marks the versions a rollout writes: its steps and its
	// rollbacks.
	SourceRollout Source = "rollout"
)

func (s Source) valid() bool {
	switch s {
	case SourceAPI, SourceCLI, SourceGuard, SourceBootstrap, SourceRollout:
		return true
	}
	return false
}

// Meta describes one version. Callers fill Author, Reason and Source; the
// store sets Version, Time, RestoredFrom and Summary.
type Meta struct {
	Version      uint64    `json:"version"`
	Time         time.Time `json:"time"`
	Author       string    `json:"author"`
	Reason       string    `json:"reason"`
	Source       Source    `json:"source"`
	RestoredFrom uint64    `json:"restored_from,omitempty"`
	// Fallback marks a version that undoes a bad change (a guard fallback,
	// a rollout abort): the pools it takes off traffic failed, so they do
	// not become rollback targets the way a flipped-away pool does.
	Fallback bool `json:"fallback,omitempty"`
	// Summary is one line computed from the diff to the previous version,
	// like "weights.green 0 → 100, weights.blue 100 → 0"; "created" for
	// version 1 and "restored version 3" for a restore.
	Summary string `json:"summary"`
	// ChangeSet is the id of the change set that wrote this version, if
	// one did (changesets.go).
	ChangeSet string `json:"changeset,omitempty"`
}

// Document is one version of a deployment: the routing document, its
// metadata, and the state the store keeps beside it.
// Config.Version == Meta.Version always.
type Document struct {
	Meta   Meta           `json:"meta"`
	Config gateway.Config `json:"config"`
	// Retained is state, not content: each pool a flip took off traffic
	// and until when it stays the rollback target (retention.go). The
	// write path maintains it; Diff, Restore and Rollback work on Config
	// alone, so restoring version n gives exactly n's content.
	Retained map[string]time.Time `json:"retained,omitempty"`
}

// MaxAuthor is the most characters of Meta.Author; Meta.Reason may have
// gateway.MaxReason.
const MaxAuthor = 200

const (
	defaultPrefix         = "/switchback"
	defaultRetention      = 1000
	defaultTimeout        = 5 * time.Second
	defaultHealthInterval = time.Second
)

type options struct {
	counts         *OpCounts
	prefix         string
	retention      int
	now            func() time.Time
	timeout        time.Duration
	healthInterval time.Duration
}

// Option configures a Store; an invalid value makes New fail.
type Option func(*options) error

// WithPrefix sets the prefix of every key; default "/switchback". Trailing
// slashes are dropped.
func WithPrefix(p string) Option {
	return func(o *options) error {
		q := strings.TrimRight(p, "/")
		if q == "" || strings.ContainsAny(q, " \t\r\n") {
			return &gateway.FieldError{Field: "prefix", Value: strconv.Quote(p), Want: "want a key prefix without spaces, like /switchback"}
		}
		o.prefix = q
		return nil
	}
}

// WithRetention sets how many versions history keeps per deployment;
// default 1000, at least 2 so that Rollback always finds the previous one.
func WithRetention(n int) Option {
	return func(o *options) error {
		if n < 2 {
			return fmt.Errorf("configstore: retention %d: want at least 2 versions", n)
		}
		o.retention = n
		return nil
	}
}

// WithClock sets the clock that stamps Meta.Time; default time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("configstore: clock: want a function, got nil")
		}
		o.now = now
		return nil
	}
}

// WithTimeout bounds each operation, unless its context has a shorter
// deadline; default 5s.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("configstore: timeout %s: want a positive duration", d)
		}
		o.timeout = d
		return nil
	}
}

// WithHealthInterval sets how often Watch checks that etcd answers a read;
// default 1s. A watch stream alone does not notice an etcd that went away:
// the client reconnects silently.
func WithHealthInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("configstore: health interval %s: want a positive duration", d)
		}
		o.healthInterval = d
		return nil
	}
}

// WithOpCounts counts every etcd request of the Store's reads and writes
// in c, so a test or benchmark can pin what a call costs.
func WithOpCounts(c *OpCounts) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("configstore: op counts: want a *OpCounts, got nil")
		}
		o.counts = c
		return nil
	}
}

// Store reads and writes deployment documents in etcd. It is safe for
// concurrent use; several Stores (in several processes) may share one etcd
// and prefix.
type Store struct {
	client *clientv3.Client
	// kv is client's KV, counted when WithOpCounts is given; every read
	// and write goes through it.
	kv clientv3.KV
	options

	lease leaseKeeper

	// owned is what Dial opened for this Store, closed by Close.
	owned struct {
		once     sync.Once
		client   *clientv3.Client
		embedded *Embedded
	}
}

// New returns a Store using client, which the caller owns and closes
// (after the Store's Close). Dial opens a client (and, if asked, an
// embedded etcd) that the Store owns.
func New(client *clientv3.Client, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("configstore: nil etcd client")
	}
	o := options{
		prefix:         defaultPrefix,
		retention:      defaultRetention,
		now:            time.Now,
		timeout:        defaultTimeout,
		healthInterval: defaultHealthInterval,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	s := &Store{client: client, kv: client.KV, options: o}
	if o.counts != nil {
		s.kv = countingKV{KV: client.KV, c: o.counts}
	}
	s.lease.store = s
	return s, nil
}

func (s *Store) deploymentsPrefix() string { return s.prefix + "/deployments/" }

func (s *Store) currentKey(name string) string { return s.deploymentsPrefix() + name + "/current" }

func (s *Store) historyPrefix(name string) string { return s.deploymentsPrefix() + name + "/history/" }

func (s *Store) historyKey(name string, v uint64) string {
	return s.historyPrefix(name) + fmt.Sprintf("%020d", v)
}

// op bounds one operation by the store's timeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// etcdErr classifies an error from the etcd client: those that retrying
// cannot fix are returned as they are, everything else (timeouts,
// unreachable or leaderless servers) is ErrUnavailable.
func etcdErr(op string, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrRequestTooLarge),
		errors.Is(err, rpctypes.ErrTooManyOps),
		errors.Is(err, rpctypes.ErrPermissionDenied),
		errors.Is(err, rpctypes.ErrAuthFailed),
		errors.Is(err, rpctypes.ErrUserEmpty),
		errors.Is(err, rpctypes.ErrNoSpace):
		return fmt.Errorf("configstore: %s: %w", op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

func checkName(name string) error { return gateway.CheckName("name", name) }

func checkMeta(m Meta) error {
	if strings.TrimSpace(m.Author) == "" {
		return &gateway.FieldError{Field: "author", Want: "say who makes the change (a user, a CI job, an instance)"}
	}
	if n := utf8.RuneCountInString(m.Author); n > MaxAuthor {
		return &gateway.FieldError{Field: "author", Value: strconv.Itoa(n) + " characters",
			Want: "at most " + strconv.Itoa(MaxAuthor) + " characters"}
	}
	if n := utf8.RuneCountInString(m.Reason); n > gateway.MaxReason {
		return &gateway.FieldError{Field: "reason", Value: strconv.Itoa(n) + " characters",
			Want: "at most " + strconv.Itoa(gateway.MaxReason) + " characters"}
	}
	if !m.Source.valid() {
		return &gateway.FieldError{Field: "source", Value: strconv.Quote(string(m.Source)),
			Want: "want one of api, cli, guard, bootstrap, rollout"}
	}
	return nil
}

func decodeDocument(key string, b []byte) (Document, error) {
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		return Document{}, fmt.Errorf("configstore: decode %s: %w", key, err)
	}
	return d, nil
}

// current reads a deployment's current document and the ModRevision a
// compare-and-swap must match.
func (s *Store) current(ctx context.Context, name string) (Document, int64, error) {
	key := s.currentKey(name)
	resp, err := s.kv.Get(ctx, key)
	if err != nil {
		return Document{}, 0, etcdErr("get "+name, err)
	}
	if len(resp.Kvs) == 0 {
		return Document{}, 0, &NotFoundError{Deployment: name}
	}
	d, err := decodeDocument(key, resp.Kvs[0].Value)
	return d, resp.Kvs[0].ModRevision, err
}

// List returns the names of every deployment, sorted.
func (s *Store) List(ctx context.Context) ([]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	docs, _, err := s.listCurrent(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(docs))
	for i, d := range docs {
		names[i] = d.Config.Name
	}
	return names, nil
}

// listCurrent returns every deployment's current document, sorted by name,
// as of one revision, which it returns too. It visits deployments one at a
// time, skipping over each one's history with a range that starts past it,
// so its cost grows with the number of deployments, not versions. If the
// revision is compacted meanwhile, it starts again at a newer one.
func (s *Store) listCurrent(ctx context.Context) ([]Document, int64, error) {
	for {
		docs, rev, err := s.listAt(ctx)
		if !errors.Is(err, rpctypes.ErrCompacted) {
			return docs, rev, err
		}
	}
}

func (s *Store) listAt(ctx context.Context) ([]Document, int64, error) {
	base := s.deploymentsPrefix()
	end := clientv3.GetPrefixRangeEnd(base)
	start := base
	var rev int64
	var docs []Document
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, start, opts...)
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil, 0, err
		}
		if err != nil {
			return nil, 0, etcdErr("list deployments", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		if len(resp.Kvs) == 0 {
			break
		}
		key := string(resp.Kvs[0].Key)
		name, _, _ := strings.Cut(strings.TrimPrefix(key, base), "/")
		start = clientv3.GetPrefixRangeEnd(base + name + "/")
		// current sorts before history, so the first key of a deployment
		// is its current document; anything else is not a deployment.
		if key != s.currentKey(name) {
			continue
		}
		// A document the store did not write (it does not decode, or names
		// another deployment) is skipped rather than let it hide the others.
		d, err := decodeDocument(key, resp.Kvs[0].Value)
		if err != nil || d.Config.Name != name {
			continue
		}
		docs = append(docs, d)
	}
	slices.SortFunc(docs, func(a, b Document) int { return strings.Compare(a.Config.Name, b.Config.Name) })
	return docs, rev, nil
}

// Get returns a deployment's current version, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (Document, error) {
	if err := checkName(name); err != nil {
		return Document{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	d, _, err := s.current(ctx, name)
	return d, err
}

// Version returns version v of a deployment from history, or ErrNotFound
// (also for a version retention has dropped).
func (s *Store) Version(ctx context.Context, name string, v uint64) (Document, error) {
	if err := checkName(name); err != nil {
		return Document{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.version(ctx, name, v)
}

func (s *Store) version(ctx context.Context, name string, v uint64) (Document, error) {
	what := "version " + strconv.FormatUint(v, 10)
	if v == 0 {
		return Document{}, &NotFoundError{Deployment: name, What: what}
	}
	key := s.historyKey(name, v)
	resp, err := s.kv.Get(ctx, key)
	if err != nil {
		return Document{}, etcdErr("get "+name+" "+what, err)
	}
	if len(resp.Kvs) == 0 {
		return Document{}, &NotFoundError{Deployment: name, What: what}
	}
	return decodeDocument(key, resp.Kvs[0].Value)
}

// History returns the metadata of a deployment's retained versions, newest
// first, at most limit of them (all when limit <= 0), or ErrNotFound.
func (s *Store) History(ctx context.Context, name string, limit int) ([]Meta, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return s.historyMetas(ctx, s.historyPrefix(name), limit, "history of "+name, &NotFoundError{Deployment: name})
}

// historyMetas lists the metadata of the versions under a history prefix,
// a deployment's or a service's, newest first, at most limit (all when
// limit <= 0); notFound is the answer when there are none.
func (s *Store) historyMetas(ctx context.Context, prefix string, limit int, what string, notFound error) ([]Meta, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	resp, err := s.kv.Get(ctx, prefix, opts...)
	if err != nil {
		return nil, etcdErr(what, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, notFound
	}
	metas := make([]Meta, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		// Only the metadata: both kinds of document keep it under "meta".
		var d struct {
			Meta Meta `json:"meta"`
		}
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			return nil, fmt.Errorf("configstore: decode %s: %w", kv.Key, err)
		}
		metas = append(metas, d.Meta)
	}
	return metas, nil
}
