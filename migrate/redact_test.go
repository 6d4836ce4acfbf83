package migrate

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"postgres://postgres:secretpw@127.0.0.1:5432/test?sslmode=disable", "postgres://postgres:xxxxx@127.0.0.1:5432/test?sslmode=disable"},
		{"postgresql://u:p%40ss@db.example:5432/app", "postgresql://u:xxxxx@db.example:5432/app"},
		{"postgres://u:pa@ss@db/app", "postgres://u:xxxxx@db/app"},
		{"postgres://u:pa/ss@db/app", "postgres://u:xxxxx@db/app"},
		{"postgres://u:@?@127.0.0.1:5432/test?sslmode=disable", "postgres://u:xxxxx@127.0.0.1:5432/test?sslmode=disable"},
		{"postgres://u:pw@db/app?application_name=a@b", "postgres://u:xxxxx@b"},
		{"u:a://b@tcp(db:3306)/app", "u:xxxxx@tcp(db:3306)/app"},
		{"postgres://postgres@127.0.0.1:5432/test", "postgres://postgres@127.0.0.1:5432/test"},
		{"postgres://db/app?user=u&password=secretpw&sslmode=disable", "postgres://db/app?user=u&password=xxxxx&sslmode=disable"},
		{"postgres://u@db/app?x=a@b", "postgres://u@db/app?x=a@b"},
		{"mysql://root:secretpw@127.0.0.1:3306/test", "mysql://root:xxxxx@127.0.0.1:3306/test"},
		{"root:secretpw@tcp(127.0.0.1:3306)/test?parseTime=true", "root:xxxxx@tcp(127.0.0.1:3306)/test?parseTime=true"},
		{"root:secret@pw@tcp(127.0.0.1:3306)/test", "root:xxxxx@tcp(127.0.0.1:3306)/test"},
		{"root@tcp(127.0.0.1:3306)/test", "root@tcp(127.0.0.1:3306)/test"},
		{"host=db user=u password=secretpw dbname=app", "host=db user=u password=xxxxx dbname=app"},
		{"host=db password='secret pw' dbname=app", "host=db password=xxxxx dbname=app"},
		{"oracle://scott:tiger@db/orcl", "oracle://scott:xxxxx@db/orcl"},
		{"sqlite:./app.db", "sqlite:./app.db"},
		{"sqlite:/tmp/a:b@c.db", "sqlite:/tmp/a:b@c.db"},
		{"", ""},
	}
	for _, tt := range tests {
		got := Redact(tt.in)
		if got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got2 := Redact(got); got2 != got {
			t.Errorf("Redact is not idempotent on %q: %q", got, got2)
		}
	}
}

// TestRedactAny: whatever the shape, a password written as user:PW@ is
// gone from the result.
func TestRedactAny(t *testing.T) {
	for _, pw := range []string{"secretpw", "s3cr3t!", "pa:ss", "a@b"} {
		for _, form := range []string{"postgres://u:%s@h:5432/db", "mysql://u:%s@h/db", "u:%s@tcp(h:3306)/db", "u:%s@/db"} {
			dsn := strings.Replace(form, "%s", pw, 1)
			if got := Redact(dsn); strings.Contains(got, pw) {
				t.Errorf("Redact(%q) = %q, still shows the password", dsn, got)
			}
		}
	}
}
