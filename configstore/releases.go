package configstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/release"
)

// Releases: one record per release (package release), under
//
//	<prefix>/releases/<id>
//
// The store keeps them and enforces what needs a transaction: at most one
// open release per deployment. What a release captures and how it rolls
// back is control's business.

// MaxReleaseLabel is the most characters of a release's label.
const MaxReleaseLabel = 200

func (s *Store) releasesPrefix() string { return s.prefix + "/releases/" }

// newReleaseID names a release by its start, so ids sort by time and an
// operator reads when it began: "r-20261129-204512-3f9a".
func newReleaseID(t time.Time) string {
	var suffix [2]byte
	_, _ = rand.Read(suffix[:])
	return "r-" + t.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(suffix[:])
}

// ValidReleaseID reports whether id has the form of a release id.
func ValidReleaseID(id string) bool {
	if len(id) != len("r-20060102-150405-0000") || !strings.HasPrefix(id, "r-") {
		return false
	}
	if _, err := time.Parse("20060102-150405", id[2:17]); err != nil || id[17] != '-' {
		return false
	}
	for _, r := range id[18:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

func checkReleaseID(id string) error {
	if !ValidReleaseID(id) {
		return &gateway.FieldError{Field: "id", Value: strconv.Quote(id), Want: "want a release id, like r-20261129-204512-3f9a"}
	}
	return nil
}

// checkRelease validates what a caller fills in a release record.
func checkRelease(r release.Release) error {
	for _, f := range []struct{ field, value string }{{"name", r.Name}, {"deployment", r.Deployment}, {"pool", r.Pool}} {
		if err := gateway.CheckName(f.field, f.value); err != nil {
			return err
		}
	}
	// A label is free-form, as a pool's release label is: only its size
	// and control characters are refused.
	if n := utf8.RuneCountInString(r.Label); n > MaxReleaseLabel || strings.ContainsFunc(r.Label, unicode.IsControl) {
		return &gateway.FieldError{Field: "label", Value: strconv.Quote(r.Label),
			Want: "a label of at most " + strconv.Itoa(MaxReleaseLabel) + " characters without control characters, like v2.1 or a commit"}
	}
	for i, u := range r.Upstreams {
		if strings.TrimSpace(u) == "" || strings.ContainsAny(u, " \t\r\n") {
			return &gateway.FieldError{Field: "upstreams[" + strconv.Itoa(i) + "]", Value: strconv.Quote(u), Want: "want a host:port or URL without spaces"}
		}
	}
	dbs := make([]string, 0, len(r.Databases))
	for db := range r.Databases {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	for _, db := range dbs {
		need := r.Databases[db]
		field := "databases." + db
		if err := gateway.CheckName("databases", db); err != nil {
			return err
		}
		if need.Version < 0 {
			return &gateway.FieldError{Field: field + ".version", Value: strconv.FormatInt(need.Version, 10), Want: "want a migration version, 0 or more"}
		}
		if need.MinVersion < 0 || need.MinVersion > need.Version {
			return &gateway.FieldError{Field: field + ".min_version", Value: strconv.FormatInt(need.MinVersion, 10),
				Want: "want 0 to the version the release needs, " + strconv.FormatInt(need.Version, 10)}
		}
	}
	if n := utf8.RuneCountInString(r.Author); n > MaxAuthor {
		return &gateway.FieldError{Field: "author", Value: strconv.Itoa(n) + " characters", Want: "at most " + strconv.Itoa(MaxAuthor) + " characters"}
	}
	if n := utf8.RuneCountInString(r.Reason); n > gateway.MaxReason {
		return &gateway.FieldError{Field: "reason", Value: strconv.Itoa(n) + " characters", Want: "at most " + strconv.Itoa(gateway.MaxReason) + " characters"}
	}
	switch r.Status {
	case release.Open, release.Finished, release.RollingBack, release.RolledBack, release.RollbackFailed:
	default:
		return &gateway.FieldError{Field: "status", Value: strconv.Quote(string(r.Status)),
			Want: "want one of open, finished, rolling_back, rolled_back, rollback_failed"}
	}
	return nil
}

// listReleases reads every release and the revision it read them at.
func (s *Store) listReleases(ctx context.Context) ([]release.Release, int64, error) {
	resp, err := s.kv.Get(ctx, s.releasesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, etcdErr("list releases", err)
	}
	out := make([]release.Release, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r release.Release
		if json.Unmarshal(kv.Value, &r) == nil && ValidReleaseID(r.ID) {
			out = append(out, r)
		}
	}
	// Newest first; the id breaks ties within one second of Started.
	slices.SortFunc(out, func(a, b release.Release) int {
		return cmp.Or(b.Started.Compare(a.Started), strings.Compare(b.ID, a.ID))
	})
	return out, resp.Header.Revision, nil
}

// CreateRelease stores a new release with an id of its own, Status Open
// and Started now unless set, and returns it with its key's ModRevision.
// A deployment has at most one open release, and a name is not reused
// among a deployment's releases that are not rolled back: either is a
// *gateway.FieldError naming the release in the way. The check and the
// write are one transaction on the revision the check read, so two
// concurrent starts never both succeed.
func (s *Store) CreateRelease(ctx context.Context, r release.Release) (release.Release, int64, error) {
	if r.Status == "" {
		r.Status = release.Open
	}
	if err := checkRelease(r); err != nil {
		return release.Release{}, 0, err
	}
	if r.Status != release.Open {
		return release.Release{}, 0, &gateway.FieldError{Field: "status", Value: strconv.Quote(string(r.Status)), Want: "a new release is open"}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	now := s.now().UTC().Round(0)
	if r.Started.IsZero() {
		r.Started = now
	}
	r.ID = newReleaseID(now)
	b, err := json.Marshal(r)
	if err != nil {
		return release.Release{}, 0, fmt.Errorf("configstore: encode release: %w", err)
	}
	key := s.releasesPrefix() + r.ID
	for attempt := 1; ; attempt++ {
		all, rev, err := s.listReleases(ctx)
		if err != nil {
			return release.Release{}, 0, err
		}
		for _, o := range all {
			if o.Deployment != r.Deployment {
				continue
			}
			if o.Status == release.Open {
				return release.Release{}, 0, &gateway.FieldError{Field: "deployment", Value: strconv.Quote(r.Deployment),
					Want: "one open release per deployment; release " + o.ID + " (" + o.Name + ") is open: finish it first"}
			}
			if o.Name == r.Name && o.Status != release.RolledBack {
				return release.Release{}, 0, &gateway.FieldError{Field: "name", Value: strconv.Quote(r.Name),
					Want: "a name not used by another release of " + r.Deployment + " that is not rolled back; release " + o.ID + " has it"}
			}
		}
		// Nothing under the prefix changed since the list: no release was
		// opened meanwhile.
		resp, err := s.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.releasesPrefix()), "<", rev+1).WithPrefix(),
				clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(b))).
			Commit()
		if err != nil {
			return release.Release{}, 0, etcdErr("create release "+r.ID, err)
		}
		if resp.Succeeded {
			return r, resp.Header.Revision, nil
		}
		if err := sleep(ctx, conflictBackoff(attempt)); err != nil {
			return release.Release{}, 0, fmt.Errorf("%w: create release: lost to other writers %d times until %w", ErrUnavailable, attempt, err)
		}
	}
}

// GetRelease returns release id and its key's ModRevision, or a
// *NotFoundError.
func (s *Store) GetRelease(ctx context.Context, id string) (release.Release, int64, error) {
	if err := checkReleaseID(id); err != nil {
		return release.Release{}, 0, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.kv.Get(ctx, s.releasesPrefix()+id)
	if err != nil {
		return release.Release{}, 0, etcdErr("get release "+id, err)
	}
	if len(resp.Kvs) == 0 {
		return release.Release{}, 0, &NotFoundError{Deployment: id, Kind: "release"}
	}
	var r release.Release
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return release.Release{}, 0, fmt.Errorf("configstore: decode release %s: %w", id, err)
	}
	return r, resp.Kvs[0].ModRevision, nil
}

// FindRelease returns the release with id idOrName or, failing that, the
// newest release named idOrName. A name used by releases of several
// deployments is a *gateway.FieldError listing them: the caller must give
// the id. Neither is a *NotFoundError.
func (s *Store) FindRelease(ctx context.Context, idOrName string) (release.Release, int64, error) {
	if ValidReleaseID(idOrName) {
		r, rev, err := s.GetRelease(ctx, idOrName)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return r, rev, err
		}
	} else if err := gateway.CheckName("release", idOrName); err != nil {
		return release.Release{}, 0, &gateway.FieldError{Field: "release", Value: strconv.Quote(idOrName),
			Want: "want a release id, like r-20261129-204512-3f9a, or a release name"}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	all, _, err := s.listReleases(ctx)
	if err != nil {
		return release.Release{}, 0, err
	}
	var found []release.Release
	var deployments []string
	for _, r := range all {
		if r.Name == idOrName {
			found = append(found, r)
			if !slices.Contains(deployments, r.Deployment) {
				deployments = append(deployments, r.Deployment)
			}
		}
	}
	if len(found) == 0 {
		return release.Release{}, 0, &NotFoundError{Deployment: idOrName, Kind: "release"}
	}
	if len(deployments) > 1 {
		ids := make([]string, len(found))
		for i, r := range found {
			ids[i] = r.ID + " (" + r.Deployment + ")"
		}
		return release.Release{}, 0, &gateway.FieldError{Field: "release", Value: strconv.Quote(idOrName),
			Want: "a name used in one deployment only; releases of " + strings.Join(deployments, ", ") + " have it, give the id: " + strings.Join(ids, ", ")}
	}
	// found is newest first; read it again for its revision.
	return s.GetRelease(ctx, found[0].ID)
}

// ListReleases returns the releases of deployment (every deployment's when
// it is ""), newest first.
func (s *Store) ListReleases(ctx context.Context, deployment string) ([]release.Release, error) {
	if deployment != "" {
		if err := gateway.CheckName("deployment", deployment); err != nil {
			return nil, err
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	all, _, err := s.listReleases(ctx)
	if err != nil || deployment == "" {
		return all, err
	}
	return slices.DeleteFunc(all, func(r release.Release) bool { return r.Deployment != deployment }), nil
}

// PutRelease writes r over its record if the key is still at ifRev (its
// ModRevision as read), and returns the new ModRevision; otherwise it is a
// *ConflictError. ifRev 0 means the record must not exist yet (prefer
// CreateRelease, which checks the open release). With Fence, a deposed
// leader's write is ErrNotLeader.
func (s *Store) PutRelease(ctx context.Context, r release.Release, ifRev int64, opts ...WriteOption) (int64, error) {
	if err := checkReleaseID(r.ID); err != nil {
		return 0, err
	}
	if err := checkRelease(r); err != nil {
		return 0, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("configstore: encode release %s: %w", r.ID, err)
	}
	leader := writeOpts(opts).leader
	ctx, cancel := s.op(ctx)
	defer cancel()
	key := s.releasesPrefix() + r.ID
	resp, err := s.kv.Txn(ctx).
		If(leader.fence(clientv3.Compare(clientv3.ModRevision(key), "=", ifRev))...).
		Then(clientv3.OpPut(key, string(b))).
		Else(leader.check()...).
		Commit()
	if err != nil {
		return 0, etcdErr("put release "+r.ID, err)
	}
	if !resp.Succeeded {
		if err := leader.deposed(resp); err != nil {
			return 0, err
		}
		return 0, &ConflictError{Deployment: r.Deployment, Kind: "release " + r.ID}
	}
	return resp.Header.Revision, nil
}

// DeleteRelease removes release id if its key is still at ifRev: only for
// taking back a release that changed nothing (a one-step release whose
// first change was refused). A release that changed anything stays: its
// record is the way back. A lost race is a *ConflictError, an unknown id
// a *NotFoundError.
func (s *Store) DeleteRelease(ctx context.Context, id string, ifRev int64) error {
	if err := checkReleaseID(id); err != nil {
		return err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	key := s.releasesPrefix() + id
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", ifRev)).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return etcdErr("delete release "+id, err)
	}
	if !resp.Succeeded {
		if len(resp.Responses[0].GetResponseRange().GetKvs()) == 0 {
			return &NotFoundError{Deployment: id, Kind: "release"}
		}
		return &ConflictError{Deployment: id, Kind: "release"}
	}
	return nil
}
