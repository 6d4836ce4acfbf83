package configstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/gateway"
)

func TestGrayRelease(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	putService(t, s, "payments", `{"max": 20}`)
	res, err := s.StartGray(ctx, "payments", raw(`{"max": 50}`), 30, 0, testMeta("try 50"))
	if err != nil {
		t.Fatal(err)
	}
	doc := res.Doc
	if doc.Meta.Version != 2 || string(doc.Config) != `{"max":20}` || doc.Gray == nil || doc.Meta.Summary != "gray 30%: max 20 → 50" {
		t.Fatalf("gray version = %+v gray %+v", doc.Meta, doc.Gray)
	}
	// Instances get the gray document exactly when their bucket under the
	// service's seed is below 30% (3000 of 10000 buckets).
	in := 0
	for i := range 1000 {
		id := fmt.Sprintf("payments-%d", i)
		cfg, gray := doc.For(id)
		want := gateway.Bucket("service:payments", id) < 3000
		if gray != want || (string(cfg) == `{"max":50}`) != want {
			t.Fatalf("%s: gray %v cfg %s, want gray %v", id, gray, cfg, want)
		}
		if gray {
			in++
		}
	}
	if in < 200 || in > 400 {
		t.Fatalf("%d of 1000 instances in a 30%% gray release", in)
	}
	if cfg, gray := doc.For(""); gray || string(cfg) != `{"max":20}` {
		t.Fatalf("no instance id: gray %v %s, want the main document", gray, cfg)
	}

	if _, err := s.StartGray(ctx, "payments", raw(`{"max": 50}`), 0, 0, testMeta("")); !isField(err, "percent") {
		t.Fatalf("percent 0: %v, want a FieldError on percent", err)
	}
	promoted, err := s.PromoteGray(ctx, "payments", 0, testMeta("looks good"))
	if err != nil || string(promoted.Doc.Config) != `{"max":50}` || promoted.Doc.Gray != nil || !strings.HasPrefix(promoted.Doc.Meta.Summary, "promoted gray") {
		t.Fatalf("promote = %+v, %v", promoted.Doc, err)
	}
	if _, err := s.AbandonGray(ctx, "payments", 0, testMeta("")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("abandon without gray = %v, want ErrNotFound", err)
	}
	if _, err := s.StartGray(ctx, "payments", raw(`{"max": 70}`), 5, 0, testMeta("")); err != nil {
		t.Fatal(err)
	}
	abandoned, err := s.AbandonGray(ctx, "payments", 0, testMeta("no"))
	if err != nil || abandoned.Doc.Gray != nil || string(abandoned.Doc.Config) != `{"max":50}` || abandoned.Doc.Meta.Version != 5 {
		t.Fatalf("abandon = %+v, %v", abandoned.Doc, err)
	}
	// The schema applies to the gray document too.
	if err := s.SetServiceSchema(ctx, "payments", raw(`{"properties": {"max": {"maximum": 100}}}`), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartGray(ctx, "payments", raw(`{"max": 500}`), 5, 0, testMeta("")); !isField(err, "gray.max") {
		t.Fatalf("gray over the schema = %v, want a FieldError on gray.max", err)
	}
}

func isField(err error, field string) bool {
	var fe *gateway.FieldError
	return errors.As(err, &fe) && fe.Field == field
}
