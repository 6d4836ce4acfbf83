package gateway

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Criterion kinds: where an external rollback criterion's value comes from.
const (
	// CriterionDatabase is the share of a database's connections in use,
	// in percent: numbackends / max_connections on PostgreSQL,
	// Threads_connected / max_connections on MySQL and MariaDB.
	CriterionDatabase = "database"
	// CriterionPrometheus is the value of a PromQL query that returns one
	// number (a scalar, or a vector of one sample).
	CriterionPrometheus = "prometheus"
	// CriterionHTTP is a health endpoint that must answer Status within
	// Within.
	CriterionHTTP = "http"
)

// Criterion is an external rollback criterion: a signal the proxy cannot
// measure itself, judged by the elected instance beside the proxy's own
// figures. Its breach rolls back the newest change within its window.
type Criterion struct {
	// Name identifies it in /guard, metrics, events and history reasons.
	Name string `json:"name"`
	// Kind is database, prometheus or http.
	Kind string `json:"kind"`
	// Database names a `database NAME DSN` line of the gateway's global
	// option; the DSN itself never enters the document (nor etcd).
	Database string `json:"database,omitempty"`
	// URL is the Prometheus server's base URL or the health endpoint.
	URL string `json:"url,omitempty"`
	// Query is the PromQL query.
	Query string `json:"query,omitempty"`
	// Above is the threshold of database (a percentage) and prometheus
	// criteria: a value above it is a breach.
	Above float64 `json:"above,omitempty"`
	// Status is the status the http criterion wants; Within the longest
	// it may take (default 1s).
	Status int      `json:"status,omitempty"`
	Within Duration `json:"within,omitempty"`
	// For is how long the breach must hold before it counts; 0: at once.
	For Duration `json:"for,omitempty"`
	// Window is how far back a change is blamed for the breach; default
	// the guard's window.
	Window Duration `json:"window,omitempty"`
	// Interval between two probes; default 5s.
	Interval Duration `json:"interval,omitempty"`
}

// Criterion defaults.
const (
	DefaultCriterionInterval = 5 * time.Second
	DefaultCriterionWithin   = time.Second
)

// CriterionKinds lists the accepted kinds, for messages.
const CriterionKinds = "database, prometheus or http"

// Validate checks one criterion, naming its fields under field.
func (c *Criterion) Validate(field string) error {
	if err := CheckName(field+".name", c.Name); err != nil {
		return err
	}
	switch c.Kind {
	case CriterionDatabase:
		if err := CheckName(field+".database", c.Database); err != nil {
			return err
		}
		if c.Above <= 0 || c.Above > 100 {
			return &FieldError{Field: field + ".above", Value: FormatPercent(c.Above), Want: "want a percentage of the connections above 0 and at most 100, like 90%"}
		}
	case CriterionPrometheus:
		if err := checkHTTPURL(field+".url", c.URL); err != nil {
			return err
		}
		if strings.TrimSpace(c.Query) == "" {
			return &FieldError{Field: field + ".query", Value: `""`, Want: "want a PromQL query returning one number, like \"sum(rabbitmq_queue_messages_ready)\""}
		}
	case CriterionHTTP:
		if err := checkHTTPURL(field+".url", c.URL); err != nil {
			return err
		}
		if c.Status < 100 || c.Status > 599 {
			return &FieldError{Field: field + ".status", Value: strconv.Itoa(c.Status), Want: "want a status code from 100 to 599"}
		}
		if c.Within < 0 {
			return &FieldError{Field: field + ".within", Value: time.Duration(c.Within).String(), Want: "want a positive duration such as 500ms"}
		}
	default:
		return &FieldError{Field: field + ".kind", Value: strconv.Quote(c.Kind), Want: "want " + CriterionKinds}
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"for", c.For}, {"window", c.Window}, {"interval", c.Interval}} {
		if d.v < 0 {
			return &FieldError{Field: field + "." + d.name, Value: time.Duration(d.v).String(), Want: "want a positive duration"}
		}
	}
	if c.Interval != 0 && time.Duration(c.Interval) < 100*time.Millisecond {
		return &FieldError{Field: field + ".interval", Value: time.Duration(c.Interval).String(), Want: "want 100ms or more"}
	}
	return nil
}

func checkHTTPURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &FieldError{Field: field, Value: strconv.Quote(raw), Want: "want an http:// or https:// URL"}
	}
	return nil
}

func validateCriteria(prefix string, cs []Criterion) error {
	seen := map[string]bool{}
	for i, c := range cs {
		field := prefix + ".criteria[" + strconv.Itoa(i) + "]"
		if err := c.Validate(field); err != nil {
			return err
		}
		if seen[c.Name] {
			return &FieldError{Field: field + ".name", Value: strconv.Quote(c.Name), Want: "want a name no other criterion of the guard has"}
		}
		seen[c.Name] = true
	}
	return nil
}
