package admin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/a8e2c47e/switchback/gateway"
)

// Role is what a token may do: a viewer reads, an operator also changes;
// a flags token only evaluates flags over OFREP and opens no admin route.
type Role string

const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleFlags    Role = "flags"
)

func (r Role) valid() bool { return r == RoleViewer || r == RoleOperator || r == RoleFlags }

// allows reports whether a caller holding r may use a route needing need.
func (r Role) allows(need Role) bool {
	return r == RoleOperator || (r == RoleViewer && need == RoleViewer)
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// Name is the token's name, or "local" when the API runs without tokens.
	Name string
	Role Role
	// Services, when not nil, are the only services the caller may read
	// and change (a tokens-file line ending services=payments,search).
	Services []string
}

// localPrincipal is every loopback caller when no tokens file is configured.
var localPrincipal = Principal{Name: "local", Role: RoleOperator}

type principalKey struct{}

// Caller returns the principal of a request that passed the admin's gate, for
// handlers mounted with Server.Handle.
func Caller(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// HashToken returns the hex SHA-256 of a token, as written in the tokens
// file. From a shell: printf %s "$TOKEN" | sha256sum
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenSet is a parsed tokens file. It is immutable after loadTokens.
type tokenSet struct {
	entries []tokenEntry
}

type tokenEntry struct {
	name     string
	role     Role
	hash     [sha256.Size]byte
	services []string
	// deployment is a flags token's default deployment, "" for none.
	deployment string
}

// loadTokens parses a tokens file: one token per line, "NAME ROLE
// TOKEN_SHA256", where ROLE is viewer, operator or flags and TOKEN_SHA256 is
// the hex SHA-256 of the bearer token (see HashToken); a flags line may end
// with a default deployment, "NAME flags TOKEN_SHA256 [DEPLOYMENT]". Blank
// lines and lines starting with # are ignored. Errors name file:line.
func loadTokens(path string) (*tokenSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	ts := &tokenSet{}
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		at := fmt.Sprintf("%s:%d", path, line)
		fields := strings.Fields(text)
		var services []string
		deployment := ""
		switch {
		case len(fields) == 4 && strings.HasPrefix(fields[3], "services="):
			var err error
			if services, err = parseServicesScope(fields[3]); err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			fields = fields[:3]
		case len(fields) == 4 && Role(fields[1]) == RoleFlags:
			if !gateway.ValidName(fields[3]) {
				return nil, fmt.Errorf("%s: deployment %q: want a deployment name, %s", at, fields[3], gateway.NameRule)
			}
			deployment = fields[3]
			fields = fields[:3]
		}
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s: got %d fields, want NAME ROLE TOKEN_SHA256 [services=a,b], or NAME flags TOKEN_SHA256 [DEPLOYMENT] (for example: alice operator $(printf %%s TOKEN | sha256sum))", at, len(fields))
		}
		name, role, sum := fields[0], Role(fields[1]), fields[2]
		if !gateway.ValidName(name) || name == localPrincipal.Name {
			return nil, fmt.Errorf("%s: name %q: %s, not %q", at, name, gateway.NameRule, localPrincipal.Name)
		}
		if !role.valid() {
			return nil, fmt.Errorf("%s: role %q: want viewer, operator or flags", at, role)
		}
		var e tokenEntry
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%s: token hash %q: want 64 hex digits, the SHA-256 of the token (printf %%s TOKEN | sha256sum)", at, sum)
		} else {
			copy(e.hash[:], b)
		}
		if prev, ok := names[name]; ok {
			return nil, fmt.Errorf("%s: name %q already used on line %d", at, name, prev)
		}
		if prev, ok := hashes[e.hash]; ok {
			return nil, fmt.Errorf("%s: same token hash as line %d; give every name its own token", at, prev)
		}
		names[name], hashes[e.hash] = line, line
		e.name, e.role, e.services, e.deployment = name, role, services, deployment
		ts.entries = append(ts.entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	if len(ts.entries) == 0 {
		return nil, fmt.Errorf("tokens file %s: no tokens; add lines NAME ROLE TOKEN_SHA256 or configure no tokens file", path)
	}
	return ts, nil
}

// lookup finds the entry for a presented token. Every entry is compared, in
// constant time over fixed-length hashes, so timing says nothing about which
// entry (if any) matched or how much of it did.
func (ts *tokenSet) lookup(token string) (Principal, bool) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range ts.entries {
		if subtle.ConstantTimeCompare(sum[:], ts.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	return Principal{Name: ts.entries[found].name, Role: ts.entries[found].role, Services: ts.entries[found].services}, true
}

// FlagsTokens are the flags tokens of a tokens file, for the OFREP
// listener. It is immutable.
type FlagsTokens struct{ set *tokenSet }

// LoadFlagsTokens reads a tokens file (the admin's, see loadTokens) and
// keeps its flags tokens. A file with none is not an error: OFREP then
// refuses every token.
func LoadFlagsTokens(path string) (*FlagsTokens, error) {
	ts, err := loadTokens(path)
	if err != nil {
		return nil, err
	}
	flags := &tokenSet{}
	for _, e := range ts.entries {
		if e.role == RoleFlags {
			flags.entries = append(flags.entries, e)
		}
	}
	return &FlagsTokens{set: flags}, nil
}

// Len is the number of flags tokens.
func (t *FlagsTokens) Len() int { return len(t.set.entries) }

// Lookup finds a flags token's name and default deployment.
func (t *FlagsTokens) Lookup(token string) (name, deployment string, ok bool) {
	p, ok := t.set.lookup(token)
	if !ok {
		return "", "", false
	}
	d, _ := t.Named(p.Name)
	return p.Name, d, true
}

// Named reports whether a flags token of that name exists, and its default
// deployment.
func (t *FlagsTokens) Named(name string) (deployment string, ok bool) {
	for _, e := range t.set.entries {
		if e.name == name {
			return e.deployment, true
		}
	}
	return "", false
}

// authenticate names the caller, or says why not: 401 for a missing or
// unknown token, 403 for a non-loopback client when there are no tokens.
func (s *Server) authenticate(r *http.Request) (Principal, *apiError) {
	if s.tokens == nil {
		if !gateway.IsLoopback(r.RemoteAddr) {
			return Principal{}, &apiError{status: http.StatusForbidden,
				msg: "the admin API has no tokens file, so it only serves clients on this host; configure tokens to allow remote clients"}
		}
		return localPrincipal, nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return Principal{}, &apiError{status: http.StatusUnauthorized, field: "Authorization",
			msg: "missing token: send Authorization: Bearer <token>"}
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Principal{}, &apiError{status: http.StatusUnauthorized, field: "Authorization",
			msg: "malformed Authorization header: want Bearer <token>"}
	}
	p, ok := s.tokens.lookup(strings.TrimSpace(token))
	if !ok {
		return Principal{}, &apiError{status: http.StatusUnauthorized, field: "Authorization", msg: "unknown token"}
	}
	return p, nil
}

// hostAllowlist guards against DNS rebinding: a browser tricked into
// sending requests to 127.0.0.1 still sends the attacker's name in Host.
type hostAllowlist map[string]bool

func newHostAllowlist(extra []string) (hostAllowlist, error) {
	h := hostAllowlist{"localhost": true, "127.0.0.1": true, "::1": true}
	for _, e := range extra {
		e = strings.TrimSpace(e)
		name := hostName(e)
		if name == "" || strings.ContainsAny(e, " /?#@") {
			return nil, fmt.Errorf("allowed host %q: want a host name or IP address, optionally with a port", e)
		}
		h[name] = true
	}
	return h, nil
}

// allowed reports whether r's Host names this server: a listed name, or the
// local address the connection arrived on, with any port.
func (h hostAllowlist) allowed(r *http.Request) bool {
	name := hostName(r.Host)
	if name == "" {
		return false
	}
	if h[name] {
		return true
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			if ip, err := netip.ParseAddr(name); err == nil && ip.Unmap() == ap.Addr().Unmap() {
				return true
			}
		}
	}
	return false
}

// hostName lowercases a Host value and strips its port and IPv6 brackets.
func hostName(host string) string {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// SignIn names the holder of token, for pages mounted with Mount that keep
// their own sessions; ok is false for an unknown token and whenever the
// server has no tokens file (see HasTokens).
func (s *Server) SignIn(token string) (p Principal, ok bool) {
	if s.tokens == nil {
		return Principal{}, false
	}
	return s.tokens.lookup(strings.TrimSpace(token))
}

// HasTokens reports whether the server has a tokens file. Without one,
// mounted pages must serve loopback clients only, as Local, like the API.
func (s *Server) HasTokens() bool { return s.tokens != nil }

// Local is the principal of every loopback caller without a tokens file.
func Local() Principal { return localPrincipal }
