package migrate

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/pressly/goose/v3"
)

// Phase says whether a migration only adds to the schema (expand) or may
// remove from it (contract).
type Phase string

const (
	PhaseExpand   Phase = "expand"
	PhaseContract Phase = "contract"
)

// ParsePhase validates a --phase value.
func ParsePhase(s string) (Phase, error) {
	switch Phase(s) {
	case PhaseExpand, PhaseContract:
		return Phase(s), nil
	}
	return "", fmt.Errorf("--phase %q: accepted: expand, contract", s)
}

// ErrNoMigrations is returned when the migrations directory holds no
// NUMBER_name.sql file.
var ErrNoMigrations = errors.New("migrate: no migrations found")

// Migration is one parsed NUMBER_name.sql file.
type Migration struct {
	Version int64
	// File is the base name, such as 00002_add_email_verified.sql.
	File string
	// Phase is PhaseExpand unless the file says "-- +switchback contract".
	Phase Phase
	// Snapshot lists the tables copied before Up runs.
	Snapshot []string
	// NoTx is set by "-- +goose NO TRANSACTION".
	NoTx bool
	Up   []Statement
	Down []Statement
}

// Statement is one SQL statement and the line it starts on.
type Statement struct {
	SQL  string
	Line int
}

// transactional reports whether a failure of m leaves nothing behind.
func (m *Migration) transactional(d Dialect) bool {
	return d.transactionalDDL() && !m.NoTx
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// LoadMigrations reads and parses every NUMBER_name.sql file in fsys, in
// version order. Files without a numeric prefix are ignored, as goose does.
func LoadMigrations(fsys fs.FS) ([]*Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []*Migration
	seen := map[int64]string{}
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			continue
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("migration version %d is used by both %s and %s; each version must be unique", v, prev, name)
		}
		seen[v] = name
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration: %w", err)
		}
		m, err := parseMigration(path.Base(name), string(b))
		if err != nil {
			return nil, err
		}
		m.Version = v
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, ErrNoMigrations
	}
	slices.SortFunc(out, func(a, b *Migration) int {
		switch {
		case a.Version < b.Version:
			return -1
		case a.Version > b.Version:
			return 1
		}
		return 0
	})
	return out, nil
}

// parseMigration splits a goose SQL file into statements the way goose
// does (a statement ends with a line whose last word ends in ';', or at
// StatementEnd) and reads the +switchback annotations.
func parseMigration(file, text string) (*Migration, error) {
	m := &Migration{File: file, Phase: PhaseExpand}
	const (
		start = iota
		up
		down
	)
	section := start
	inBlock := false
	var buf strings.Builder
	bufLine := 0
	phaseSet := ""
	flush := func() {
		sql := strings.TrimSpace(buf.String())
		buf.Reset()
		if sql == "" {
			return
		}
		st := Statement{SQL: sql, Line: bufLine}
		if section == up {
			m.Up = append(m.Up, st)
		} else {
			m.Down = append(m.Down, st)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			body := strings.TrimSpace(strings.TrimLeft(trimmed, "-"))
			switch {
			case strings.HasPrefix(body, "+switchback"):
				args := strings.Fields(strings.TrimPrefix(body, "+switchback"))
				if err := m.annotate(args, &phaseSet); err != nil {
					return nil, fmt.Errorf("%s:%d: %w", file, n, err)
				}
				continue
			case strings.HasPrefix(body, "+goose"):
				cmd := strings.ToLower(strings.Join(strings.Fields(strings.TrimPrefix(body, "+goose")), " "))
				switch cmd {
				case "up":
					if section != start {
						return nil, fmt.Errorf("%s:%d: duplicate '-- +goose Up'", file, n)
					}
					section = up
				case "down":
					if section != up || inBlock {
						return nil, fmt.Errorf("%s:%d: '-- +goose Down' must follow '-- +goose Up'", file, n)
					}
					if strings.TrimSpace(buf.String()) != "" {
						return nil, fmt.Errorf("%s:%d: unfinished statement before '-- +goose Down': missing semicolon?", file, bufLine)
					}
					section = down
				case "statementbegin":
					if section == start {
						return nil, fmt.Errorf("%s:%d: '-- +goose StatementBegin' before '-- +goose Up'", file, n)
					}
					inBlock = true
				case "statementend":
					if !inBlock {
						return nil, fmt.Errorf("%s:%d: '-- +goose StatementEnd' without StatementBegin", file, n)
					}
					inBlock = false
					flush()
				case "no transaction":
					m.NoTx = true
				case "envsub on", "envsub off":
				default:
					return nil, fmt.Errorf("%s:%d: unknown goose annotation %q", file, n, trimmed)
				}
				continue
			}
			if buf.Len() == 0 {
				continue
			}
		}
		if section == start {
			if trimmed != "" {
				return nil, fmt.Errorf("%s:%d: SQL before '-- +goose Up'", file, n)
			}
			continue
		}
		if buf.Len() == 0 {
			if trimmed == "" {
				continue
			}
			bufLine = n
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
		if !inBlock && endsStatement(line) {
			flush()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if section == start {
		return nil, fmt.Errorf("%s: missing '-- +goose Up' annotation", file)
	}
	if inBlock {
		return nil, fmt.Errorf("%s: missing '-- +goose StatementEnd'", file)
	}
	if strings.TrimSpace(buf.String()) != "" {
		return nil, fmt.Errorf("%s:%d: unfinished statement: missing semicolon?", file, bufLine)
	}
	return m, nil
}

// annotate applies one "-- +switchback ..." line.
func (m *Migration) annotate(args []string, phaseSet *string) error {
	if len(args) == 0 {
		return errors.New(`empty "+switchback" annotation; accepted: expand, contract, snapshot TABLE...`)
	}
	switch strings.ToLower(args[0]) {
	case "expand", "contract":
		p := Phase(strings.ToLower(args[0]))
		if *phaseSet != "" && *phaseSet != string(p) {
			return fmt.Errorf("annotation %q conflicts with earlier %q; a migration is either expand or contract", p, *phaseSet)
		}
		if len(args) > 1 {
			return fmt.Errorf("annotation %q takes no arguments, got %q", p, strings.Join(args[1:], " "))
		}
		*phaseSet = string(p)
		m.Phase = p
		return nil
	case "snapshot":
		if len(args) == 1 {
			return errors.New(`annotation "snapshot" needs at least one table name, such as "-- +switchback snapshot orders order_items"`)
		}
		for _, t := range args[1:] {
			if !identRE.MatchString(t) {
				return fmt.Errorf("snapshot table %q: accepted: an unquoted table name of letters, digits and _", t)
			}
			if !slices.Contains(m.Snapshot, t) {
				m.Snapshot = append(m.Snapshot, t)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown annotation %q; accepted: expand, contract, snapshot TABLE...", "+switchback "+strings.Join(args, " "))
}

// endsStatement mirrors goose: the last word before any "--" comment ends
// with a semicolon.
func endsStatement(line string) bool {
	prev := ""
	for _, w := range strings.Fields(line) {
		if strings.HasPrefix(w, "--") {
			break
		}
		prev = w
	}
	return strings.HasSuffix(prev, ";")
}
