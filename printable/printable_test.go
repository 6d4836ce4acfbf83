package printable

import (
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "roll back: p95 over 500ms", "roll back: p95 over 500ms"},
		{"unicode text", "déploiement → vert ✓", "déploiement → vert ✓"},
		{"ansi colour", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"clear screen and title", "\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\a`},
		{"carriage return", "ok\rforged", `ok\rforged`},
		{"newline and tab", "a\nb\tc", `a\nb\tc`},
		{"c1 csi", "a\u009b31mb", `a\u009b31mb`},
		{"bidi override", "abc\u202edcba", `abc\u202edcba`},
		{"invalid utf-8", "a\xffb", `a\xffb`},
		{"backslash kept", `C:\deploy`, `C:\deploy`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"one too long", 11, "one too lo…"},
		{"ééééé", 3, "éé…"},
		{"abc", 0, ""},
	}
	for _, tt := range tests {
		got := Truncate(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(tt.n, 0) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func BenchmarkEscapePlain(b *testing.B) {
	s := "flip to green: release 1.4.2 passed the canary"
	for b.Loop() {
		_ = Escape(s)
	}
}
