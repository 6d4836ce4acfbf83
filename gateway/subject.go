package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"strings"
)

// StickyKind says where a request's subject (the identity bucketing hashes)
// comes from.
type StickyKind uint8

const (
	// StickyCookie reads a cookie, which the gateway issues when missing.
	StickyCookie StickyKind = iota
	// StickyHeader reads a request header, such as X-User-ID.
	StickyHeader
	// StickyIP uses the client IP address.
	StickyIP
)

// DefaultCookie is the cookie the gateway issues when no sticky source is
// configured.
const DefaultCookie = "sb_uid"

// Sticky is a compiled subject source.
type Sticky struct {
	Kind StickyKind
	// Name is the cookie or header name (canonical form for headers).
	Name string
}

// ParseSticky builds a Sticky from its Caddyfile/JSON words: "cookie NAME",
// "header NAME" or "ip".
func ParseSticky(kind, name string) (Sticky, error) {
	switch kind {
	case "", "cookie":
		if name == "" {
			name = DefaultCookie
		}
		if !validToken(name) {
			return Sticky{}, &FieldError{Field: "sticky.name", Value: fmt.Sprintf("%q", name), Want: "a cookie name (letters, digits and !#$%&'*+-.^_`|~)"}
		}
		return Sticky{Kind: StickyCookie, Name: name}, nil
	case "header":
		if !validToken(name) {
			return Sticky{}, &FieldError{Field: "sticky.name", Value: fmt.Sprintf("%q", name), Want: "a header name such as X-User-ID"}
		}
		return Sticky{Kind: StickyHeader, Name: textproto.CanonicalMIMEHeaderKey(name)}, nil
	case "ip":
		if name != "" {
			return Sticky{}, &FieldError{Field: "sticky", Value: "ip " + name, Want: "'sticky ip' takes no name"}
		}
		return Sticky{Kind: StickyIP}, nil
	}
	return Sticky{}, &FieldError{Field: "sticky.source", Value: fmt.Sprintf("%q", kind), Want: "one of cookie, header, ip"}
}

// Subject returns the request's subject; ok is false when it has none.
// clientIP is the client address as the host resolved it (behind trusted
// proxies it differs from RemoteAddr); "" means RemoteAddr. It allocates
// nothing.
func (s Sticky) Subject(r *http.Request, clientIP string) (subject string, ok bool) {
	switch s.Kind {
	case StickyHeader:
		v := r.Header[s.Name]
		if len(v) == 0 || v[0] == "" {
			return "", false
		}
		return v[0], true
	case StickyIP:
		if clientIP != "" {
			return clientIP, true
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr, r.RemoteAddr != ""
		}
		return host, host != ""
	default:
		return cookieValue(r.Header, s.Name)
	}
}

// cookieValue finds one cookie without http.Request.Cookie, which parses
// and allocates every cookie of the request.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, found := strings.Cut(part, "=")
			if !found || k != name {
				continue
			}
			v = strings.Trim(v, `"`)
			if v == "" {
				return "", false
			}
			return v, true
		}
	}
	return "", false
}

// subjectCookieAttrs follow the issued subject in its Set-Cookie line: a
// year long, HttpOnly, SameSite=Lax, and Secure over TLS. The line is
// exactly what net/http's Cookie.String writes for those attributes.
const (
	subjectCookieAttrs       = "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
	subjectCookieAttrsSecure = "; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax"
)

// subjectIDLen is the length of an issued subject: 128 random bits in hex.
const subjectIDLen = 32

// IssueSubject gives a request without a subject a new one: a random
// 128-bit identifier, added to the response headers h as the Sticky's
// cookie (Secure when the request came over TLS). It returns the
// identifier, so the request can be bucketed as every later one will be.
// It allocates the Set-Cookie line, of which the identifier is a part, and
// the header's value slice.
func (s Sticky) IssueSubject(h http.Header, secure bool) string {
	var raw [subjectIDLen / 2]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on supported platforms
	var id [subjectIDLen]byte
	hex.Encode(id[:], raw[:])
	attrs := subjectCookieAttrs
	if secure {
		attrs = subjectCookieAttrsSecure
	}
	var b strings.Builder
	b.Grow(len(s.Name) + 1 + len(id) + len(attrs))
	b.WriteString(s.Name)
	b.WriteByte('=')
	b.Write(id[:])
	b.WriteString(attrs)
	line := b.String()
	h["Set-Cookie"] = append(h["Set-Cookie"], line)
	return line[len(s.Name)+1 : len(s.Name)+1+len(id)]
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
