package configstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/a8e2c47e/switchback/gateway"
)

func TestDrillsNewestFirst(t *testing.T) {
	s := newStore(t)
	for i := range 3 {
		if _, err := s.AppendDrill(t.Context(), json.RawMessage(fmt.Sprintf(`{"pattern": "flip", "n": %d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Drills(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d drills, want 2", len(got))
	}
	for i, want := range []int{2, 1} {
		var r struct{ N int }
		if err := json.Unmarshal(got[i].Result, &r); err != nil || r.N != want {
			t.Errorf("drill %d: %s (%v), want n %d", i, got[i].Result, err, want)
		}
	}
	if got[0].ID <= got[1].ID {
		t.Errorf("IDs %s, %s: want newest first", got[0].ID, got[1].ID)
	}
}

func TestAppendDrillRefusesNonObjects(t *testing.T) {
	s := newStore(t)
	for _, bad := range []string{`[1]`, `nope`, `"flip"`} {
		_, err := s.AppendDrill(t.Context(), json.RawMessage(bad))
		var fe *gateway.FieldError
		if !errors.As(err, &fe) || fe.Field != "drill" {
			t.Errorf("AppendDrill(%s) = %v, want a field error on drill", bad, err)
		}
	}
	if got, err := s.Drills(t.Context(), 0); err != nil || len(got) != 0 {
		t.Errorf("after refusals: %d drills (%v), want none", len(got), err)
	}
}
