package migrate

import (
	"strings"
	"unicode"
)

type tokKind int

const (
	tokWord   tokKind = iota // keyword or bare identifier
	tokIdent                 // quoted identifier, quotes removed
	tokString                // string literal, quotes kept
	tokNumber
	tokPunct
)

// operatorChars make up multi-character operators such as <> and ::.
const operatorChars = "<>=!|:&+-*/%^~"

type token struct {
	kind tokKind
	text string
}

// is reports whether t is the bare word w, case-insensitively.
func (t token) is(w string) bool { return t.kind == tokWord && strings.EqualFold(t.text, w) }

// name returns t as an object name: folded to lower case when bare.
func (t token) name() string {
	if t.kind == tokWord {
		return strings.ToLower(t.text)
	}
	return t.text
}

// tokenize splits SQL into tokens, dropping comments and whitespace. It is
// deliberately small: enough to find keywords and names in DDL, not a
// parser.
func tokenize(s string) []token {
	var out []token
	r := []rune(s)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '-' && i+1 < len(r) && r[i+1] == '-':
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(r) && r[i+1] == '*':
			i += 2
			for i+1 < len(r) && !(r[i] == '*' && r[i+1] == '/') {
				i++
			}
			i += 2
		case c == '\'':
			j := i + 1
			for j < len(r) {
				if r[j] == '\'' {
					if j+1 < len(r) && r[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				if r[j] == '\\' {
					j++
				}
				j++
			}
			end := min(j+1, len(r))
			out = append(out, token{tokString, string(r[i:end])})
			i = end
		case c == '"' || c == '`' || c == '[':
			closer := c
			if c == '[' {
				closer = ']'
			}
			j := i + 1
			for j < len(r) && r[j] != closer {
				j++
			}
			out = append(out, token{tokIdent, string(r[i+1 : min(j, len(r))])})
			i = min(j+1, len(r))
		case c == '$' && i+1 < len(r) && (r[i+1] == '$' || unicode.IsLetter(r[i+1])):
			// PostgreSQL dollar quoting: $$ ... $$ or $tag$ ... $tag$.
			j := i + 1
			for j < len(r) && r[j] != '$' && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_') {
				j++
			}
			if j < len(r) && r[j] == '$' {
				tag := string(r[i : j+1])
				rest := string(r[j+1:])
				k := strings.Index(rest, tag)
				if k < 0 {
					k = len(rest)
				}
				body := string(r[i:j+1]) + rest[:k] + tag
				out = append(out, token{tokString, body})
				i = j + 1 + len([]rune(rest[:k])) + len([]rune(tag))
				continue
			}
			out = append(out, token{tokPunct, "$"})
			i++
		case unicode.IsLetter(c) || c == '_':
			j := i
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_' || r[j] == '$') {
				j++
			}
			out = append(out, token{tokWord, string(r[i:j])})
			i = j
		case unicode.IsDigit(c):
			j := i
			for j < len(r) && (unicode.IsDigit(r[j]) || r[j] == '.') {
				j++
			}
			out = append(out, token{tokNumber, string(r[i:j])})
			i = j
		case strings.ContainsRune(operatorChars, c):
			j := i
			for j < len(r) && strings.ContainsRune(operatorChars, r[j]) &&
				!(r[j] == '-' && j+1 < len(r) && r[j+1] == '-') && !(r[j] == '/' && j+1 < len(r) && r[j+1] == '*') {
				j++
			}
			if j == i {
				j = i + 1
			}
			out = append(out, token{tokPunct, string(r[i:j])})
			i = j
		default:
			out = append(out, token{tokPunct, string(c)})
			i++
		}
	}
	return out
}

// joinTokens renders tokens with single spaces, for normalised
// comparison of expressions.
func joinTokens(ts []token) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 && !noSpaceAfter(ts[i-1]) && !noSpaceBefore(t) {
			b.WriteByte(' ')
		}
		switch t.kind {
		case tokIdent:
			b.WriteString(`"` + t.text + `"`)
		case tokWord:
			b.WriteString(strings.ToLower(t.text))
		default:
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// balanced returns the tokens inside the parenthesis that opens at ts[i]
// and the index just past its closing parenthesis.
func balanced(ts []token, i int) ([]token, int) {
	depth := 0
	for j := i; j < len(ts); j++ {
		if ts[j].kind != tokPunct {
			continue
		}
		switch ts[j].text {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return ts[i+1 : j], j + 1
			}
		}
	}
	return ts[min(i+1, len(ts)):], len(ts)
}

func noSpaceAfter(t token) bool { return t.kind == tokPunct && (t.text == "(" || t.text == ".") }
func noSpaceBefore(t token) bool {
	return t.kind == tokPunct && (t.text == ")" || t.text == "," || t.text == "." || t.text == "(")
}
