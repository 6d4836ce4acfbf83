package migrate

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/printable"
)

// acceptedUsage is quoted in every error about a --usage file.
const acceptedUsage = "PostgreSQL csvlog, MySQL/MariaDB general query log, or TIMESTAMP<TAB>QUERY lines"

// UsageObject is a table, or a column of a table, whose use is looked for
// in query logs.
type UsageObject struct {
	Table  string
	Column string // empty for the table itself
}

func (o UsageObject) String() string {
	if o.Column == "" {
		return o.Table
	}
	return o.Table + "." + o.Column
}

// usageScan accumulates what the logs say about a set of objects.
type usageScan struct {
	objects []UsageObject
	// words holds, per object, the lower-cased names that must all appear
	// as whole words in a query for it to count as a use.
	words [][]string

	first, last time.Time
	entries     int
	lastUse     map[UsageObject]time.Time
	lastQuery   map[UsageObject]string
}

func newUsageScan(objects []UsageObject) *usageScan {
	s := &usageScan{objects: objects, lastUse: map[UsageObject]time.Time{}, lastQuery: map[UsageObject]string{}}
	for _, o := range objects {
		w := []string{strings.ToLower(o.Table)}
		if o.Column != "" {
			w = append(w, strings.ToLower(o.Column))
		}
		s.words = append(s.words, w)
	}
	return s
}

// ddlRE matches statements that change the schema. Those are migrations,
// not uses: the contract migration's own DROP shows up in later logs.
var ddlRE = regexp.MustCompile(`(?is)^\s*(alter|drop|create|rename|comment|truncate)\b`)

// entry records one log entry; query is empty for entries that are not
// statements (connections, checkpoints), which still count for coverage.
func (s *usageScan) entry(at time.Time, query string) {
	if s.entries == 0 || at.Before(s.first) {
		s.first = at
	}
	if s.entries == 0 || at.After(s.last) {
		s.last = at
	}
	s.entries++
	if query == "" || ddlRE.MatchString(query) {
		return
	}
	lower := strings.ToLower(query)
	for i, o := range s.objects {
		if !containsWords(lower, s.words[i]) {
			continue
		}
		if at.After(s.lastUse[o]) {
			s.lastUse[o] = at
			s.lastQuery[o] = squash(query)
		}
	}
}

// containsWords reports whether every word occurs in s delimited by
// characters that cannot be part of an identifier.
func containsWords(s string, words []string) bool {
	for _, w := range words {
		if !containsWord(s, w) {
			return false
		}
	}
	return true
}

func containsWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		before := j == 0 || !identByte(s[j-1])
		after := j+len(w) == len(s) || !identByte(s[j+len(w)])
		if before && after {
			return true
		}
		i = j + 1
	}
}

func identByte(c byte) bool {
	return c == '_' || c == '$' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// read detects the format of one log and feeds its entries to s.
func (s *usageScan) read(name string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("--usage %s: %w", name, err)
	}
	first := firstLine(string(head))
	switch {
	case first == "":
		return fmt.Errorf("--usage %s: empty file; accepted: %s", name, acceptedUsage)
	case mysqlHeaderRE.MatchString(first) || mysqlLineRE.MatchString(first):
		return s.readMySQL(name, br)
	case csvlogStart(first):
		return s.readCSVLog(name, br)
	}
	if ts, _, ok := strings.Cut(first, "\t"); ok {
		if _, err := parseLogTime(ts); err == nil {
			return s.readTSV(name, br)
		}
	}
	return fmt.Errorf("--usage %s: line 1 %q: unrecognised format; accepted: %s", name, printable.Truncate(first, 60), acceptedUsage)
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			return strings.TrimRight(l, "\r")
		}
	}
	return ""
}

var logTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 MST",
	"2006-01-02 15:04:05.999999999 -07",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

// parseLogTime accepts the timestamp forms of the supported logs. A time
// without a zone is taken as UTC.
func parseLogTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range logTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: accepted: RFC 3339 (2006-01-02T15:04:05Z) or 2006-01-02 15:04:05[.000][ ZONE]", s)
}

func (s *usageScan) readTSV(name string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		ts, q, ok := strings.Cut(line, "\t")
		if !ok {
			return fmt.Errorf("--usage %s: line %d: no tab after the timestamp; accepted: TIMESTAMP<TAB>QUERY", name, n)
		}
		at, err := parseLogTime(ts)
		if err != nil {
			return fmt.Errorf("--usage %s: line %d: %w", name, n, err)
		}
		s.entry(at, q)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("--usage %s: %w", name, err)
	}
	return nil
}

// csvlogStart reports whether line starts like a PostgreSQL csvlog record.
func csvlogStart(line string) bool {
	ts, _, ok := strings.Cut(line, ",")
	if !ok {
		return false
	}
	_, err := parseLogTime(ts)
	return err == nil
}

// csvlog message forms that carry a statement.
var pgStatementRE = regexp.MustCompile(`(?s)^(?:duration: [0-9.]+ ms\s+)?(?:statement|execute [^:]*|bind [^:]*):\s(.*)$`)

// readCSVLog reads a PostgreSQL csvlog: the time is the first field, the
// message the fourteenth.
func (s *usageScan) readCSVLog(name string, r io.Reader) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.LazyQuotes = true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return fmt.Errorf("--usage %s: %w", name, err)
		}
		if len(rec) < 14 {
			return fmt.Errorf("--usage %s: line %d: %d fields, a csvlog record has at least 14; accepted: %s", name, line, len(rec), acceptedUsage)
		}
		at, err := parseLogTime(rec[0])
		if err != nil {
			return fmt.Errorf("--usage %s: line %d: %w", name, line, err)
		}
		q := ""
		if m := pgStatementRE.FindStringSubmatch(rec[13]); m != nil {
			q = m[1]
		}
		s.entry(at, q)
	}
}

var (
	mysqlHeaderRE = regexp.MustCompile(`(?i)(started with:|^Tcp port:|^Time\s+Id\s+Command\s+Argument)`)
	// A general log line: an optional time, the connection id, the
	// command and its argument. Lines without a time belong to the last
	// time seen (MariaDB writes it once per second).
	mysqlLineRE = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\S+|\d{6}\s+\d{1,2}:\d\d:\d\d)?\t+\s*(\d+)\s+([A-Za-z][A-Za-z ]*?)\t(.*)$|^(\d{4}-\d\d-\d\dT\S+|\d{6}\s+\d{1,2}:\d\d:\d\d)?\t+\s*(\d+)\s+([A-Za-z]+)\s*$`)
)

func (s *usageScan) readMySQL(name string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var now time.Time
	var cur strings.Builder
	var curAt time.Time
	pending := false
	flush := func() {
		if pending {
			s.entry(curAt, cur.String())
		}
		cur.Reset()
		pending = false
	}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		m := mysqlLineRE.FindStringSubmatch(line)
		if m == nil {
			if mysqlHeaderRE.MatchString(line) {
				continue
			}
			if pending {
				// A statement that spans lines.
				cur.WriteByte('\n')
				cur.WriteString(line)
				continue
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			return fmt.Errorf("--usage %s: line %d %q: not a general query log line; accepted: %s", name, n, printable.Truncate(line, 60), acceptedUsage)
		}
		flush()
		ts, cmd, arg := m[1], m[3], m[4]
		if m[5] != "" || m[7] != "" {
			ts, cmd, arg = m[5], m[7], ""
		}
		if ts != "" {
			at, err := parseMySQLTime(ts)
			if err != nil {
				return fmt.Errorf("--usage %s: line %d: %w", name, n, err)
			}
			now = at
		}
		if now.IsZero() {
			return fmt.Errorf("--usage %s: line %d: entry before any timestamp", name, n)
		}
		switch strings.TrimSpace(cmd) {
		case "Query", "Execute", "Prepare":
			cur.WriteString(arg)
			curAt = now
			pending = true
		default:
			s.entry(now, "")
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("--usage %s: %w", name, err)
	}
	return nil
}

func parseMySQLTime(ts string) (time.Time, error) {
	if strings.Contains(ts, "T") {
		return parseLogTime(ts)
	}
	// MariaDB and MySQL 5.6: yymmdd h:mm:ss, local time without a zone.
	f := strings.Fields(ts)
	if len(f) == 2 {
		if t, err := time.Parse("060102 15:04:05", f[0]+" "+leftPad(f[1])); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: accepted: 2006-01-02T15:04:05.000000Z or 060102 15:04:05", ts)
}

func leftPad(hms string) string {
	if len(hms) == 7 {
		return "0" + hms
	}
	return hms
}
