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

// NewSubjectID returns a random 128-bit identifier for a new subject
// cookie.
func NewSubjectID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// SubjectCookie is the Set-Cookie for a newly issued subject: a year long,
// HttpOnly, SameSite=Lax, and Secure when the request came over TLS.
func SubjectCookie(name, id string, secure bool) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    id,
		Path:     "/",
		MaxAge:   365 * 24 * 3600,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
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
