package criteria

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/migrate"
)

// TestDatabaseConnections fills a real server's connections past a
// threshold set just above its current use, and sees the criterion breach
// with the share it measured.
func TestDatabaseConnections(t *testing.T) {
	for _, tt := range []struct {
		name, env, driver string
		dialect           migrate.Dialect
	}{
		{"postgres", "SWITCHBACK_TEST_POSTGRES", "pgx", migrate.Postgres},
		{"mysql", "SWITCHBACK_TEST_MYSQL", "mysql", migrate.MySQL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dsn := os.Getenv(tt.env)
			if dsn == "" {
				t.Skipf("%s not set", tt.env)
			}
			db, err := OpenDatabase("main", dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			used, maxConns, err := db.Connections(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// Other tests share the server: leave room for their
			// connections coming and going, and stay bounded.
			const margin, extra = 5, 15
			if used+extra >= maxConns {
				t.Skipf("server too busy: %d of %d connections in use", used, maxConns)
			}
			above := 100 * float64(used+margin) / float64(maxConns)
			c := gateway.Criterion{Name: "db_connections", Kind: gateway.CriterionDatabase, Database: "main", Above: above}
			p := &Prober{Databases: map[string]*Database{"main": db}}
			if s := p.Probe(t.Context(), c, time.Now()); s.Err != "" || s.Breach {
				t.Fatalf("before: sample %+v; want no breach below %.1f%%", s, above)
			}

			t.Run("over the threshold", func(t *testing.T) {
				holdConnections(t, tt.driver, db, extra)
				s := p.Probe(t.Context(), c, time.Now())
				if s.Err != "" || !s.Breach || s.Value <= above {
					t.Fatalf("with %d more connections: sample %+v; want a breach above %.1f%%", extra, s, above)
				}
				if want := fmt.Sprintf("of %d)", maxConns); !strings.Contains(s.Text, want) {
					t.Errorf("text %q does not say the maximum (%s)", s.Text, want)
				}
			})
		})
	}
}

// holdConnections opens n more connections to db's server until the test
// ends.
func holdConnections(t *testing.T, driver string, db *Database, n int) {
	t.Helper()
	target, err := migrate.ParseTarget(os.Getenv(map[string]string{"pgx": "SWITCHBACK_TEST_POSTGRES", "mysql": "SWITCHBACK_TEST_MYSQL"}[driver]))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := sql.Open(driver, target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	pool.SetMaxIdleConns(n)
	conns := make([]*sql.Conn, 0, n)
	for range n {
		c, err := pool.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
}

// TestDatabaseErrorsHidePassword: a probe of an unreachable server says so
// without the DSN's password.
func TestDatabaseErrorsHidePassword(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler()) // a port where no database answers
	addr := strings.TrimPrefix(ln.URL, "http://")
	ln.Close()
	for _, dsn := range []string{
		"postgres://app:s3cret-pw@" + addr + "/shop?sslmode=disable&connect_timeout=1",
		"mysql://app:s3cret-pw@" + addr + "/shop?timeout=1s",
	} {
		db, err := OpenDatabase("main", dsn)
		if err != nil {
			t.Fatal(err)
		}
		p := &Prober{Databases: map[string]*Database{"main": db}}
		s := p.Probe(t.Context(), gateway.Criterion{Name: "c", Kind: gateway.CriterionDatabase, Database: "main", Above: 90}, time.Now())
		db.Close()
		if s.Err == "" || s.Breach {
			t.Errorf("%s: sample %+v; want an error and no breach", migrate.Redact(dsn), s)
		}
		if strings.Contains(s.Err, "s3cret-pw") {
			t.Errorf("error shows the password: %s", s.Err)
		}
	}
	if _, err := OpenDatabase("main", "sqlite:./x.db"); err == nil {
		t.Error("a SQLite database was accepted; it has no connections to count")
	}
	_, err := OpenDatabase("main", "oracle://u:s3cret-pw@h/db")
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("unknown scheme: error %v; want one without the password", err)
	}
}

// promAPI serves /api/v1/query like Prometheus, answering body for the
// query want and an error for any other.
func promAPI(t *testing.T, want, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/api/v1/query" || r.URL.Query().Get("query") != want {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
			return
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPrometheusQuery(t *testing.T) {
	const q = "sum(rabbitmq_queue_messages_ready)"
	tests := []struct {
		name, body string
		want       float64
		wantErr    string
	}{
		{"vector", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"5210"]}]}}`, 5210, ""},
		{"scalar", `{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"12.5"]}}`, 12.5, ""},
		{"NaN", `{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"NaN"]}}`, math.NaN(), ""},
		{"empty", `{"status":"success","data":{"resultType":"vector","result":[]}}`, 0, "0 series"},
		{"two series", `{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}`, 0, "2 series"},
		{"matrix", `{"status":"success","data":{"resultType":"matrix","result":[]}}`, 0, "matrix"},
		{"not json", `<html>`, 0, "not the API's JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := promAPI(t, q, tt.body)
			got, err := Query(t.Context(), srv.Client(), srv.URL, q)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case math.IsNaN(tt.want) && !math.IsNaN(got), !math.IsNaN(tt.want) && got != tt.want:
				t.Fatalf("got %g, want %g", got, tt.want)
			}
		})
	}
	t.Run("query refused", func(t *testing.T) {
		srv := promAPI(t, q, "")
		if _, err := Query(t.Context(), srv.Client(), srv.URL, "sum(("); err == nil || !strings.Contains(err.Error(), "parse error") {
			t.Fatalf("err %v, want the server's error", err)
		}
	})
}

func TestPrometheusCriterion(t *testing.T) {
	const q = "sum(queue)"
	srv := promAPI(t, q, `{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"5210"]}]}}`)
	p := &Prober{Client: srv.Client()}
	for _, tt := range []struct {
		above  float64
		breach bool
	}{{5000, true}, {6000, false}} {
		s := p.Probe(t.Context(), gateway.Criterion{Name: "queue", Kind: gateway.CriterionPrometheus, URL: srv.URL, Query: q, Above: tt.above}, time.Now())
		if s.Err != "" || s.Breach != tt.breach || s.Value != 5210 {
			t.Errorf("above %g: sample %+v; want value 5210, breach %v", tt.above, s, tt.breach)
		}
	}
}

func TestHTTPCriterion(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	p := &Prober{Client: srv.Client()}
	tests := []struct {
		path      string
		breach    bool
		wantInErr string
		wantText  string
	}{
		{"/ok", false, "", "status 200 in"},
		{"/down", true, "", "status 503, want 200"},
		{"/slow", true, "no answer in time", "no answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c := gateway.Criterion{Name: "health", Kind: gateway.CriterionHTTP, URL: srv.URL + tt.path, Status: 200, Within: gateway.Duration(100 * time.Millisecond)}
			s := p.Probe(t.Context(), c, time.Now())
			if s.Breach != tt.breach || !strings.Contains(s.Err, tt.wantInErr) || !strings.Contains(s.Text, tt.wantText) {
				t.Errorf("sample %+v; want breach %v, err with %q, text with %q", s, tt.breach, tt.wantInErr, tt.wantText)
			}
		})
	}
	_, _, err := Check(t.Context(), srv.Client(), srv.URL+"/slow", 50*time.Millisecond)
	if !errors.Is(err, ErrTooSlow) {
		t.Errorf("slow endpoint: err %v, want ErrTooSlow", err)
	}
}

func TestTrack(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int, breach bool) guard.Sample {
		return guard.Sample{Time: t0.Add(time.Duration(s) * time.Second), Breach: breach}
	}
	tests := []struct {
		name      string
		samples   []guard.Sample
		wantSince time.Time
	}{
		{"never", []guard.Sample{at(0, false), at(1, false)}, time.Time{}},
		{"from the first breach", []guard.Sample{at(0, false), at(1, true), at(2, true), at(3, true)}, t0.Add(time.Second)},
		{"a good sample ends it", []guard.Sample{at(0, true), at(1, false)}, time.Time{}},
		{"and a new one starts afresh", []guard.Sample{at(0, true), at(1, false), at(2, true)}, t0.Add(2 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st guard.CriterionState
			for _, s := range tt.samples {
				st = Track(st, s)
			}
			if !st.Since.Equal(tt.wantSince) || st.Last != tt.samples[len(tt.samples)-1] {
				t.Errorf("state %+v, want since %v and the last sample", st, tt.wantSince)
			}
		})
	}
}
