package backend

import (
	"encoding/json"
	"testing"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `""`},
		{"plain", "blue", `"blue"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"control characters", "a\n\r\t\x00\x1f", `"a\n\r\t\u0000\u001f"`},
		{"html is left alone", "<a&b>", `"<a&b>"`},
		{"utf-8", "grün ✓", `"grün ✓"`},
		{"invalid utf-8", "a\xffb\xc3", `"a\ufffdb\ufffd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendJSONString(nil, tt.in)); got != tt.want {
				t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzAppendJSONString checks that every string encodes to valid JSON that
// decodes to what encoding/json would have produced.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "blue", "a\"\\\n\x00", "\xff\xfe", "\u2028<>&", "grün"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s, not valid JSON: %v", s, enc, err)
		}
		std, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("appendJSONString(%q) decodes to %q, want %q", s, got, want)
		}
	})
}

func BenchmarkAppendJSONString(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendJSONString(buf[:0], "/api/v1/users/12345?with=\"quotes\"")
	}
}
