package drill

import (
	"slices"
	"testing"
)

func TestFaultURLs(t *testing.T) {
	ups := deploymentPools{"green": {"10.0.0.2:9002", "http://10.0.0.3:9002"}}
	got := faultURLs(&Env{}, ups, "green")
	want := []string{"http://10.0.0.2:9002/_fault", "http://10.0.0.3:9002/_fault"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	given := &Env{Faults: map[string][]string{"green": {"http://127.0.0.1:1/_fault"}}}
	if got := faultURLs(given, ups, "green"); !slices.Equal(got, given.Faults["green"]) {
		t.Errorf("with Env.Faults: got %q, want them", got)
	}
}

func TestLineDiff(t *testing.T) {
	tests := []struct {
		a, b string
		want []string
	}{
		{"x\ny\nz", "x\ny\nz", []string{"  x", "  y", "  z"}},
		{"x\n\"blue\": 100\nz", "x\n\"blue\": 0\nz", []string{"  x", `- "blue": 100`, `+ "blue": 0`, "  z"}},
		{"x", "x\ny", []string{"  x", "+ y"}},
	}
	for _, tt := range tests {
		if got := lineDiff(tt.a, tt.b); !slices.Equal(got, tt.want) {
			t.Errorf("lineDiff(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"flag", "checkout", "f", "0", "--reason", "it's bad", ""})
	want := `flag checkout f 0 --reason 'it'\''s bad' ''`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
