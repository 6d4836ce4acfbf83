// Package printable makes text that came from outside (reasons, authors,
// names, log lines) fit to print: runes a terminal would act on are
// escaped, and long text is cut on a rune boundary. It imports nothing of
// Switchback, so every package may use it.
package printable

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape writes every rune of s that does not print as itself the way Go
// quotes it (\x1b, \n, \u202e) and invalid UTF-8 as \xNN, and leaves the
// rest alone. Unlike strconv.Quote it adds no quotes, so ordinary text
// reads unchanged, but an ANSI escape, a carriage return or a
// bidirectional override in a reason can no longer rewrite the terminal
// it is shown on.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !unicode.IsPrint(r) {
			return true
		}
		i += n
	}
	return false
}

// Truncate cuts s to at most n runes, the last of them "…" when anything
// was cut; it never splits a rune.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	rs := []rune(s)
	return string(rs[:n-1]) + "…"
}
