package console

import (
	"crypto/subtle"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/admin"
)

// cookieName holds the session id; the session itself stays on the server.
const cookieName = "switchback_console"

// session is one sign-in. The token is kept so that every API request the
// console makes on the user's behalf carries it: the API, not the console,
// decides what the user may do.
type session struct {
	id      string
	token   string // empty without a tokens file
	who     admin.Principal
	csrf    string
	expires time.Time
}

// canChange reports whether the pages show this user controls that change
// anything; the API refuses a viewer's change regardless.
func (s *session) canChange() bool { return s.who.Role == admin.RoleOperator }

// current finds the request's session. Without a tokens file every loopback
// client is the API's local principal, and nobody else is served.
func (c *Console) current(r *http.Request) (*session, bool) {
	if !c.api.HasTokens() {
		if !isLoopback(r.RemoteAddr) {
			return nil, false
		}
		return &session{who: admin.Local(), csrf: c.localCSRF}, true
	}
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[ck.Value]
	if !ok {
		return nil, false
	}
	if c.now().After(s.expires) {
		delete(c.sessions, s.id)
		return nil, false
	}
	return s, true
}

// isLoopback is the API's rule for callers without a tokens file. The API
// applies it again to every request the console makes for the caller.
func isLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// signedIn runs h for a signed-in user; anyone else is sent to the sign-in
// form, or refused when the API has no tokens file.
func (c *Console) signedIn(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.current(r)
		if ok {
			h(w, r, s)
			return
		}
		if !c.api.HasTokens() {
			c.fail(w, r, nil, http.StatusForbidden,
				"The admin API has no tokens file, so the console only serves browsers on this host. Configure admin_tokens to sign in from elsewhere.")
			return
		}
		if r.Method != http.MethodGet {
			c.fail(w, r, nil, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		here := r.URL.RequestURI()
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			// A link from elsewhere (an alert, a chat) does not carry the
			// SameSite=Strict cookie. Asking again from this page does.
			c.render(w, r, http.StatusOK, "error", &page{Title: "Opening", Refresh: here,
				Error: "Opening " + here + " …", Data: struct{ Status int }{http.StatusOK}})
			return
		}
		target := Prefix + "signin"
		if here != Prefix {
			target += "?next=" + url.QueryEscape(here)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	}
}

// safeNext is where to go after signing in: a console page, never another
// site.
func safeNext(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, Prefix) ||
		strings.HasPrefix(v, "//") || strings.ContainsAny(v, "\\\r\n") {
		return Prefix
	}
	return u.RequestURI()
}

func (c *Console) handleSignInForm(w http.ResponseWriter, r *http.Request) {
	if !c.api.HasTokens() {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "signin", &page{Title: "Sign in", Data: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) handleSignIn(w http.ResponseWriter, r *http.Request) {
	if !c.api.HasTokens() {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	token := r.PostFormValue("token")
	who, ok := c.api.SignIn(token)
	if !ok {
		c.log.Info("console sign-in refused: unknown token")
		c.render(w, r, http.StatusUnauthorized, "signin", &page{Title: "Sign in", Data: safeNext(r.PostFormValue("next")),
			Error: "That token is not in the tokens file. Check it and try again."})
		return
	}
	s := &session{id: randomID(), token: token, who: who, csrf: randomID(), expires: c.now().Add(c.ttl)}
	c.mu.Lock()
	for id, old := range c.sessions {
		if c.now().After(old.expires) {
			delete(c.sessions, id)
		}
	}
	c.sessions[s.id] = s
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.id, Path: Prefix, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, Expires: s.expires,
	})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) handleSignOut(w http.ResponseWriter, r *http.Request) {
	if s, ok := c.current(r); ok && s.id != "" {
		if !c.validCSRF(r, s) {
			c.fail(w, r, s, http.StatusForbidden, "This form is out of date. Reload the page and try again.")
			return
		}
		c.mu.Lock()
		delete(c.sessions, s.id)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

// readForm reads a control's form (at most 16 KiB) and checks its token,
// answering the user itself when either fails.
func (c *Console) readForm(w http.ResponseWriter, r *http.Request, s *session) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, s, http.StatusBadRequest, "Could not read the form: "+err.Error())
		return false
	}
	if !c.validCSRF(r, s) {
		c.fail(w, r, s, http.StatusForbidden, "This form is out of date or came from elsewhere. Reload the page and try again.")
		return false
	}
	return true
}

// validCSRF checks the form token of a POST. The admin gate has already
// refused cross-origin requests; this also covers browsers that send
// neither Sec-Fetch-Site nor Origin.
func (c *Console) validCSRF(r *http.Request, s *session) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// Methods for the templates, which cannot read unexported fields.

// Name is the signed-in user's name ("local" without a tokens file).
func (s *session) Name() string { return s.who.Name }

// Role is the user's role.
func (s *session) Role() string { return string(s.who.Role) }

// CanChange reports whether the pages show controls.
func (s *session) CanChange() bool { return s.canChange() }

// CSRF is the form token.
func (s *session) CSRF() string { return s.csrf }

// CanSignOut is true for a tokens-file session.
func (s *session) CanSignOut() bool { return s.id != "" }
