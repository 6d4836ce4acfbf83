package migrate

import (
	"regexp"
	"strings"
)

// redacted replaces a password wherever a database address is shown, as
// pgx does in its own errors.
const redacted = "xxxxx"

var (
	// passwordParamRE finds password parameters in a query string
	// (?password=…&) or a keyword/value connection string (password='…').
	passwordParamRE = regexp.MustCompile(`(?i)(^|[?&\s;])((?:ssl)?pass(?:word|wd)?|pwd)=('(?:[^'\\]|\\.)*'?|[^&\s;]*)`)
	// schemeRE matches a URL's scheme and "://".
	schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
	// hostRE matches what follows a URL's user information: hosts and
	// ports (several, for PostgreSQL), then the path, query or end.
	hostRE = regexp.MustCompile(`^[A-Za-z0-9.\-_\[\]:%,]*(?:[/?#]|$)`)
)

// Redact returns a database address with its password replaced by xxxxx,
// for every message, log line and JSON answer that shows one. It knows
// URLs (postgres://user:pw@host/db, mysql://…), the Go MySQL driver's form
// (user:pw@tcp(host:port)/db), and password parameters in a query string
// or a keyword/value string (host=… password=…). Everything else is
// returned unchanged.
func Redact(dsn string) string {
	if scheme, _, ok := strings.Cut(dsn, ":"); ok && (strings.EqualFold(scheme, "sqlite") || strings.EqualFold(scheme, "sqlite3")) {
		// A file path: an @ or : in it is not a password.
		return dsn
	}
	dsn = passwordParamRE.ReplaceAllString(dsn, "${1}${2}="+redacted)
	start, at := 0, -1
	if m := schemeRE.FindStringIndex(dsn); m != nil {
		// A URL: the user information ends at the last @ that is followed
		// by a host. A password may hold @, ? or / unescaped; an @ in the
		// query string at worst hides the host too.
		start = m[1]
		for i := len(dsn) - 1; i >= start; i-- {
			if dsn[i] == '@' && hostRE.MatchString(dsn[i+1:]) {
				at = i
				break
			}
		}
	}
	if s := strings.LastIndexByte(dsn, '/'); at < 0 && s >= 0 {
		// A Go MySQL driver DSN (or what only looked like a URL), split
		// as the driver splits it: the database after the last slash,
		// the user information before the last @ ahead of it.
		start, at = 0, strings.LastIndexByte(dsn[:s], '@')
	}
	if at < 0 {
		return dsn
	}
	rest := dsn[start:]
	at -= start
	user, pw, ok := strings.Cut(rest[:at], ":")
	if !ok || pw == "" || pw == redacted {
		return dsn
	}
	return dsn[:start] + user + ":" + redacted + rest[at:]
}
