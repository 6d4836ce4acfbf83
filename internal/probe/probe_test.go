package probe
import (
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "go.etcd.io/etcd/client/v3/concurrency"
	_ "github.com/pressly/goose/v3"
	_ "modernc.org/sqlite"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/caddyserver/caddy/v2/caddytest"
	"testing"
)
func TestX(t *testing.T){}
