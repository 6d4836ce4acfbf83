package migrate

import (
	"regexp"
	"strings"
)

// redacted replaces a password wherever a database address is shown, as
// pgx does in its own errors.
const redacted = "xxxxx"

// passwordParamRE finds password parameters in a query string
// (?password=…&) or a keyword/value connection string (password='…').
var passwordParamRE = regexp.MustCompile(`(?i)(^|[?&\s;])((?:ssl)?pass(?:word|wd)?|pwd)=('(?:[^'\\]|\\.)*'?|[^&\s;]*)`)

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
	start := 0
	if i := strings.Index(dsn, "://"); i >= 0 {
		start = i + len("://")
	}
	rest := dsn[start:]
	// The user information ends at the last @ of the address part: the
	// part before the query string in a URL, the part before the
	// database's slash in a driver DSN. A password may itself hold an @.
	end := len(rest)
	if start > 0 {
		if q := strings.IndexByte(rest, '?'); q >= 0 && strings.Contains(rest[:q], "@") {
			end = q
		}
	} else if s := strings.LastIndexByte(rest, '/'); s >= 0 {
		end = s
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return dsn
	}
	user, pw, ok := strings.Cut(rest[:at], ":")
	if !ok || pw == "" || pw == redacted {
		return dsn
	}
	return dsn[:start] + user + ":" + redacted + rest[at:]
}
