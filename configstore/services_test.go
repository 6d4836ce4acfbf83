package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func putService(t *testing.T, s *Store, name, cfg string) ServiceDoc {
	t.Helper()
	res, err := s.PutService(t.Context(), name, raw(cfg), 0, testMeta("put "+name))
	if err != nil {
		t.Fatalf("PutService(%s): %v", name, err)
	}
	return res.Doc
}

func TestServiceVersions(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	v1 := putService(t, s, "payments", `{"db": {"pool": {"max": 20}}, "timeout": "2s"}`)
	if v1.Meta.Version != 1 || v1.Meta.Summary != "created" || v1.Meta.Author != "alice" || v1.Meta.Source != SourceAPI {
		t.Fatalf("v1 meta = %+v", v1.Meta)
	}
	res, err := s.PatchService(ctx, "payments", raw(`{"db": {"pool": {"max": 50}}, "timeout": null}`), 1, testMeta("more connections"))
	if err != nil || !res.Wrote {
		t.Fatalf("PatchService = %+v, %v", res, err)
	}
	if got, want := string(res.Doc.Config), `{"db":{"pool":{"max":50}}}`; got != want {
		t.Errorf("patched config = %s, want %s", got, want)
	}
	if got, want := res.Doc.Meta.Summary, "db.pool.max 20 → 50, timeout removed"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	if res.Prev.Meta.Version != 1 || res.Doc.Meta.Version != 2 {
		t.Errorf("versions prev %d doc %d, want 1 and 2", res.Prev.Meta.Version, res.Doc.Meta.Version)
	}
	changes := DiffJSON(v1.Config, res.Doc.Config)
	if len(changes) != 2 || changes[0].Path != "db.pool.max" || changes[1].Path != "timeout" {
		t.Errorf("diff = %+v, want db.pool.max and timeout", changes)
	}

	// Same content again writes nothing.
	same, err := s.PutService(ctx, "payments", raw(`{"db":{"pool":{"max":50}}}`), 0, testMeta("again"))
	if err != nil || same.Wrote || same.Doc.Meta.Version != 2 {
		t.Fatalf("PutService(same) = wrote %v version %d, %v; want no write at 2", same.Wrote, same.Doc.Meta.Version, err)
	}

	rb, err := s.RollbackService(ctx, "payments", 0, testMeta("back"))
	if err != nil || rb.Doc.Meta.Version != 3 || rb.Doc.Meta.RestoredFrom != 1 || string(rb.Doc.Config) != string(v1.Config) {
		t.Fatalf("RollbackService = %+v, %v; want version 3 restoring 1", rb.Doc, err)
	}
	rs, err := s.RestoreService(ctx, "payments", 2, 0, testMeta("forward"))
	if err != nil || rs.Doc.Meta.Version != 4 || rs.Doc.Meta.Summary != "restored version 2" {
		t.Fatalf("RestoreService = %+v, %v", rs.Doc.Meta, err)
	}
	hist, err := s.ServiceHistory(ctx, "payments", 0)
	if err != nil || len(hist) != 4 || hist[0].Version != 4 || hist[3].Version != 1 {
		t.Fatalf("ServiceHistory = %+v, %v; want 4..1", hist, err)
	}
	list, err := s.ListServices(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "payments" || list[0].Meta.Version != 4 {
		t.Fatalf("ListServices = %+v, %v", list, err)
	}
}

func TestServiceBadInputWritesNothing(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	putService(t, s, "search", `{"replicas": 3}`)
	big := `{"blob": "` + strings.Repeat("x", MaxServiceConfig) + `"}`
	tests := []struct {
		name  string
		write func() error
		field string
		is    error
	}{
		{"not an object", func() error {
			_, err := s.PutService(ctx, "search", raw(`[1, 2]`), 0, testMeta(""))
			return err
		}, "config", nil},
		{"over 256 KiB", func() error {
			_, err := s.PutService(ctx, "search", raw(big), 0, testMeta(""))
			return err
		}, "config", nil},
		{"patch not an object", func() error {
			_, err := s.PatchService(ctx, "search", raw(`"replicas"`), 0, testMeta(""))
			return err
		}, "patch", nil},
		{"unknown service", func() error {
			_, err := s.PatchService(ctx, "nosuch", raw(`{"a": 1}`), 0, testMeta(""))
			return err
		}, "", ErrNotFound},
		{"stale if-match", func() error {
			_, err := s.PutService(ctx, "search", raw(`{"replicas": 4}`), 7, testMeta(""))
			return err
		}, "", ErrConflict},
		{"bad name", func() error {
			_, err := s.PutService(ctx, "no/slash", raw(`{}`), 0, testMeta(""))
			return err
		}, "name", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.write()
			if tt.is != nil {
				if !errors.Is(err, tt.is) {
					t.Fatalf("err = %v, want %v", err, tt.is)
				}
			} else {
				var fe *gateway.FieldError
				if !errors.As(err, &fe) || fe.Field != tt.field || fe.Value == "" || fe.Want == "" {
					t.Fatalf("err = %#v, want a FieldError on %s with value and want", err, tt.field)
				}
			}
			doc, err := s.GetService(ctx, "search")
			if err != nil || doc.Meta.Version != 1 {
				t.Fatalf("after refused write: version %d, %v; want 1", doc.Meta.Version, err)
			}
		})
	}
}

func TestServiceSchema(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	putService(t, s, "payments", `{"db": {"pool": {"max": 20}}}`)
	schema := raw(`{"type": "object", "properties": {"db": {"type": "object", "properties": {"pool": {"type": "object",
		"properties": {"max": {"type": "integer", "minimum": 1, "maximum": 100}}}}}}}`)
	if err := s.SetServiceSchema(ctx, "payments", schema, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := s.PatchService(ctx, "payments", raw(`{"db": {"pool": {"max": 500}}}`), 0, testMeta("too many"))
	var fe *gateway.FieldError
	if !errors.As(err, &fe) || fe.Field != "db.pool.max" || fe.Value != "500" || !strings.Contains(fe.Want, "maximum") {
		t.Fatalf("err = %#v, want a FieldError on db.pool.max, value 500, wanting the maximum", err)
	}
	if doc, _ := s.GetService(ctx, "payments"); doc.Meta.Version != 1 {
		t.Fatalf("version %d after refused write, want 1", doc.Meta.Version)
	}
	// A schema the running document violates is refused.
	err = s.SetServiceSchema(ctx, "payments", raw(`{"required": ["region"]}`), "alice")
	if !errors.As(err, &fe) || !strings.Contains(fe.Want, "current version 1") {
		t.Fatalf("SetServiceSchema(violated) = %v, want a FieldError naming the current version", err)
	}
	// $ref may not reach the disk.
	if err := s.SetServiceSchema(ctx, "payments", raw(`{"$ref": "file:///etc/passwd"}`), "alice"); !errors.As(err, &fe) || fe.Field != "schema" {
		t.Fatalf("SetServiceSchema($ref file) = %v, want a FieldError on schema", err)
	}
	if _, err := s.PatchService(ctx, "payments", raw(`{"db": {"pool": {"max": 50}}}`), 0, testMeta("ok")); err != nil {
		t.Fatal(err)
	}
}

func TestServiceRetentionSurvivesCompaction(t *testing.T) {
	_, c := startEtcd(t, "", "127.0.0.1:0")
	s, err := New(c, WithRetention(3))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := range 5 {
		if _, err := s.PutService(ctx, "knobs", raw(`{"n": `+string(rune('0'+i))+`}`), 0, testMeta("step")); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	hist, err := s.ServiceHistory(ctx, "knobs", 0)
	if err != nil || len(hist) != 3 || hist[0].Version != 5 || hist[2].Version != 3 {
		t.Fatalf("history = %+v, %v; want versions 5, 4, 3", hist, err)
	}
	if _, err := s.ServiceVersion(ctx, "knobs", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ServiceVersion(2) = %v, want ErrNotFound (beyond retention)", err)
	}
	if _, err := s.RestoreService(ctx, "knobs", 3, 0, testMeta("restore after compaction")); err != nil {
		t.Fatal(err)
	}
}

func TestChangeSetApplyAndRevert(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, n := range []string{"payments", "search", "checkout-svc"} {
		putService(t, s, n, `{"timeout_ms": 1000}`)
	}
	bootstrap(t, s, "shop")
	cs, err := s.ApplyChangeSet(ctx, []ChangeSpec{
		{Service: "payments", Patch: raw(`{"timeout_ms": 2000}`)},
		{Service: "search", Patch: raw(`{"timeout_ms": 3000}`)},
		{Service: "checkout-svc", Config: raw(`{"timeout_ms": 4000, "retries": 2}`)},
		{Deployment: "shop", Patch: raw(`{"weights": {"blue": 0, "green": 100}}`)},
	}, testMeta("raise timeouts"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Entries) != 4 {
		t.Fatalf("entries = %+v, want 4", cs.Entries)
	}
	for _, n := range []string{"payments", "search", "checkout-svc"} {
		doc, err := s.GetService(ctx, n)
		if err != nil || doc.Meta.Version != 2 || doc.Meta.ChangeSet != cs.ID {
			t.Fatalf("%s = version %d changeset %q, %v; want 2 carrying %s", n, doc.Meta.Version, doc.Meta.ChangeSet, err, cs.ID)
		}
	}
	shop, err := s.Get(ctx, "shop")
	if err != nil || shop.Meta.ChangeSet != cs.ID || shop.Config.Weights["green"] != 100 {
		t.Fatalf("shop = %+v, %v", shop.Meta, err)
	}

	// A later change blocks the revert, naming the service and version.
	if _, err := s.PatchService(ctx, "search", raw(`{"timeout_ms": 3500}`), 0, testMeta("tweak")); err != nil {
		t.Fatal(err)
	}
	_, err = s.RevertChangeSet(ctx, cs.ID, false, testMeta("undo"))
	var rce *RevertConflictError
	if !errors.As(err, &rce) || rce.Service != "search" || rce.Current != 3 || rce.Wrote != 2 || !errors.Is(err, ErrConflict) {
		t.Fatalf("RevertChangeSet = %v, want a conflict naming search at version 3", err)
	}
	if doc, _ := s.GetService(ctx, "payments"); doc.Meta.Version != 2 {
		t.Fatalf("payments at %d after refused revert, want 2 (nothing written)", doc.Meta.Version)
	}

	rev, err := s.RevertChangeSet(ctx, cs.ID, true, testMeta("undo anyway"))
	if err != nil {
		t.Fatal(err)
	}
	if rev.RevertOf != cs.ID || len(rev.Entries) != 4 {
		t.Fatalf("revert = %+v", rev)
	}
	for _, n := range []string{"payments", "search", "checkout-svc"} {
		doc, err := s.GetService(ctx, n)
		if err != nil || string(doc.Config) != `{"timeout_ms":1000}` || doc.Meta.ChangeSet != rev.ID || doc.Meta.RestoredFrom != 1 {
			t.Fatalf("%s after revert = %s %+v, %v", n, doc.Config, doc.Meta, err)
		}
	}
	if shop, _ := s.Get(ctx, "shop"); shop.Config.Weights["blue"] != 100 {
		t.Fatalf("shop weights after revert = %v", shop.Config.Weights)
	}
	got, err := s.GetChangeSet(ctx, cs.ID)
	if err != nil || got.RevertedBy != rev.ID {
		t.Fatalf("GetChangeSet = %+v, %v; want reverted by %s", got, err, rev.ID)
	}
	if _, err := s.RevertChangeSet(ctx, cs.ID, true, testMeta("twice")); !errors.As(err, &rce) || rce.RevertedBy != rev.ID {
		t.Fatalf("second revert = %v, want a conflict naming %s", err, rev.ID)
	}
	list, err := s.ListChangeSets(ctx, 10)
	if err != nil || len(list) != 2 || list[0].ID != rev.ID {
		t.Fatalf("ListChangeSets = %+v, %v", list, err)
	}
}

func TestChangeSetAllOrNothing(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	putService(t, s, "payments", `{"max": 1}`)
	putService(t, s, "search", `{"max": 1}`)
	if err := s.SetServiceSchema(ctx, "search", raw(`{"properties": {"max": {"maximum": 10}}}`), "alice"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		specs []ChangeSpec
		field string
		is    error
	}{
		{"schema violation in one", []ChangeSpec{{Service: "payments", Patch: raw(`{"max": 2}`)}, {Service: "search", Patch: raw(`{"max": 99}`)}}, "changes[1].max", nil},
		{"unknown service", []ChangeSpec{{Service: "payments", Patch: raw(`{"max": 2}`)}, {Service: "nosuch", Patch: raw(`{"max": 2}`)}}, "", ErrNotFound},
		{"patch not an object", []ChangeSpec{{Service: "payments", Patch: raw(`[1]`)}}, "changes[0].patch", nil},
		{"twice", []ChangeSpec{{Service: "payments", Patch: raw(`{"max": 2}`)}, {Service: "payments", Patch: raw(`{"max": 3}`)}}, "changes[1]", nil},
		{"empty", nil, "changes", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ApplyChangeSet(ctx, tt.specs, testMeta("x"))
			if tt.is != nil {
				if !errors.Is(err, tt.is) {
					t.Fatalf("err = %v, want %v", err, tt.is)
				}
			} else {
				var fe *gateway.FieldError
				if !errors.As(err, &fe) || fe.Field != tt.field {
					t.Fatalf("err = %v, want a FieldError on %s", err, tt.field)
				}
			}
			for _, n := range []string{"payments", "search"} {
				if doc, _ := s.GetService(ctx, n); doc.Meta.Version != 1 {
					t.Fatalf("%s at version %d, want 1: nothing written", n, doc.Meta.Version)
				}
			}
		})
	}
}

func TestWaitService(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	putService(t, s, "payments", `{"a": 1}`)
	got := make(chan ServiceDoc, 1)
	errc := make(chan error, 1)
	go func() {
		d, err := s.WaitService(ctx, "payments", 1)
		got <- d
		errc <- err
	}()
	putService(t, s, "payments", `{"a": 2}`)
	if d := <-got; d.Meta.Version != 2 {
		t.Fatalf("WaitService = version %d, want 2", d.Meta.Version)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.WaitService(short, "payments", 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitService(after current) = %v, want the deadline", err)
	}
}
