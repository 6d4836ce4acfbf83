package gateway

import (
	"net/http"
	"testing"
)

// TestIssueSubject: the Set-Cookie line is the one net/http writes for the
// subject cookie, and the returned subject is the one a later request
// presents.
func TestIssueSubject(t *testing.T) {
	for _, secure := range []bool{false, true} {
		s, err := ParseSticky("cookie", "sid")
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{"Set-Cookie": {"other=1"}}
		id := s.IssueSubject(h, secure)
		if len(id) != subjectIDLen {
			t.Fatalf("subject %q, want %d hex digits", id, subjectIDLen)
		}
		want := (&http.Cookie{Name: "sid", Value: id, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}).String()
		if got := h["Set-Cookie"]; len(got) != 2 || got[0] != "other=1" || got[1] != want {
			t.Errorf("secure %v: Set-Cookie = %q, want [other=1 %q]", secure, got, want)
		}
		r := &http.Request{Header: http.Header{"Cookie": {"sid=" + id}}}
		if got, ok := s.Subject(r, ""); !ok || got != id {
			t.Errorf("secure %v: next request's subject = %q, %v; want %q", secure, got, ok, id)
		}
		if again := s.IssueSubject(http.Header{}, secure); again == id {
			t.Errorf("two issued subjects are both %q", id)
		}
	}
}

func BenchmarkIssueSubject(b *testing.B) {
	s, _ := ParseSticky("cookie", "")
	b.ReportAllocs()
	for b.Loop() {
		s.IssueSubject(make(http.Header, 1), false)
	}
}
