package configstore

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/a8e2c47e/switchback/gateway"
)

type testRecord struct {
	State string `json:"state"`
}

func TestRecordLifecycle(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	var nf *NotFoundError
	if _, err := s.GetRecord(ctx, "rollouts", "shop"); !errors.As(err, &nf) || nf.Deployment != "shop" {
		t.Fatalf("GetRecord before any = %v, want a *NotFoundError of shop", err)
	}
	rev, err := s.PutRecord(ctx, "rollouts", "shop", testRecord{"running"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRecord(ctx, "rollouts", "shop")
	if err != nil || got.Rev != rev || got.Name != "shop" || string(got.Value) != `{"state":"running"}` {
		t.Fatalf("GetRecord = %+v, %v; want the record at rev %d", got, err, rev)
	}

	tests := []struct {
		name  string
		ifRev int64
		ok    bool
	}{
		{"create over an existing one", 0, false},
		{"stale revision", rev - 1, false},
		{"current revision", rev, true},
		{"the revision it replaced", rev, false},
	}
	for _, tt := range tests {
		newRev, err := s.PutRecord(ctx, "rollouts", "shop", testRecord{tt.name}, tt.ifRev)
		var ce *ConflictError
		switch {
		case tt.ok && err != nil:
			t.Fatalf("%s: PutRecord = %v, want success", tt.name, err)
		case tt.ok:
			rev = newRev
		case !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || ce.Kind != "rollouts":
			t.Fatalf("%s: PutRecord = %v, want a *ConflictError of rollouts", tt.name, err)
		}
	}
	var r testRecord
	if got, err := s.GetRecord(ctx, "rollouts", "shop"); err != nil || json.Unmarshal(got.Value, &r) != nil || r.State != "current revision" {
		t.Errorf("after the writes: %s, %v; want the one that held", got.Value, err)
	}
}

func TestRecordsRejected(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	tests := []struct {
		name, kind, deployment, field string
	}{
		{"reserved kind", "deployments", "shop", "kind"},
		{"kind with a slash", "roll/outs", "shop", "kind"},
		{"empty kind", "", "shop", "kind"},
		{"bad name", "rollouts", "no spaces", "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fe *gateway.FieldError
			if _, err := s.PutRecord(ctx, tt.kind, tt.deployment, testRecord{}, 0); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("PutRecord = %v, want a *FieldError of %s", err, tt.field)
			}
			if _, err := s.GetRecord(ctx, tt.kind, tt.deployment); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("GetRecord = %v, want a *FieldError of %s", err, tt.field)
			}
		})
	}
}

func TestListRecords(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for _, name := range []string{"web", "api", "shop"} {
		if _, err := s.PutRecord(ctx, "rollouts", name, testRecord{name}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutRecord(ctx, "other", "shop", testRecord{"other kind"}, 0); err != nil {
		t.Fatal(err)
	}
	// A key the store did not write, under a name no deployment can have.
	if _, err := s.kv.Put(ctx, s.recordsPrefix("rollouts")+"bad name", "{"); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListRecords(ctx, "rollouts")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rec := range list {
		names = append(names, rec.Name)
	}
	if want := []string{"api", "shop", "web"}; !slices.Equal(names, want) {
		t.Errorf("ListRecords = %v, want %v", names, want)
	}
}
