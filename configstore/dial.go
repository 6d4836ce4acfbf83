package configstore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/gateway"
)

// DialConfig says which etcd a Store uses: an embedded one (Embedded, or
// DataDir to start one) or an external cluster (Endpoints).
type DialConfig struct {
	// Embedded is a running embedded etcd (StartEmbedded) to use; the
	// caller keeps owning it, so it can outlive the Store (a Caddy reload
	// hands it from one config to the next).
	Embedded *Embedded
	// DataDir, when Embedded is nil, starts an embedded etcd keeping its
	// data there, serving clients on ClientAddr (default 127.0.0.1:2379,
	// loopback only: it has no TLS and no auth). The Store owns it.
	DataDir    string
	ClientAddr string

	// Endpoints of an external etcd cluster, when neither of the above.
	Endpoints []string
	Username  string
	Password  string
	// TLS, when set, is the client TLS of an external cluster.
	TLS *TLSFiles

	// Prefix of every key; default /switchback.
	Prefix string
	// Logger receives the etcd client's warnings and errors; nil: errors
	// go to stderr.
	Logger *zap.Logger
}

// TLSFiles are PEM files for a client TLS connection to etcd.
type TLSFiles struct {
	// CA verifies the servers; empty means the system's roots.
	CA string
	// Cert and Key authenticate this client; both or neither.
	Cert, Key string
	// ServerName overrides the name the servers' certificates must carry.
	ServerName string
}

// DefaultClientAddr is where an embedded etcd serves clients by default.
const DefaultClientAddr = "127.0.0.1:2379"

// dialTimeout bounds connecting to an external cluster.
const dialTimeout = 5 * time.Second

// Dial connects to the etcd cfg describes, starting it first when cfg
// names a data directory, and returns a Store using it (opts as in New;
// cfg.Prefix comes first). Close releases what Dial opened.
func Dial(cfg DialConfig, opts ...Option) (*Store, error) {
	if cfg.Prefix != "" {
		opts = append([]Option{WithPrefix(cfg.Prefix)}, opts...)
	}
	var (
		client   *clientv3.Client
		embedded *Embedded
		err      error
	)
	switch {
	case cfg.Embedded != nil:
		client, err = cfg.Embedded.Client()
	case cfg.DataDir != "":
		addr := cfg.ClientAddr
		if addr == "" {
			addr = DefaultClientAddr
		}
		if err := CheckEmbeddedAddr(addr); err != nil {
			return nil, err
		}
		if embedded, err = StartEmbedded(cfg.DataDir, addr); err != nil {
			return nil, err
		}
		client, err = embedded.Client()
	default:
		client, err = dialExternal(cfg)
	}
	if err != nil {
		if embedded != nil {
			embedded.Close()
		}
		return nil, err
	}
	s, err := New(client, opts...)
	if err != nil {
		client.Close()
		if embedded != nil {
			embedded.Close()
		}
		return nil, err
	}
	s.owned.client, s.owned.embedded = client, embedded
	return s, nil
}

// CheckEmbeddedAddr refuses a client address for an embedded etcd that is
// not loopback: it has no TLS and no auth, so reachable from elsewhere it
// would let anyone change routing around the admin API's tokens.
func CheckEmbeddedAddr(addr string) error {
	if !gateway.IsLoopback(addr) {
		return &gateway.FieldError{Field: "client_addr", Value: strconv.Quote(addr),
			Want: "want a loopback address such as " + DefaultClientAddr + " (an embedded etcd has no TLS or auth); for a shared store use an etcd cluster secured with TLS"}
	}
	return nil
}

func dialExternal(cfg DialConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, &gateway.FieldError{Field: "endpoints", Value: "none", Want: "list at least one etcd endpoint, like 10.0.0.5:2379"}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = quietLogger()
	} else {
		logger = logger.WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	}
	cc := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		Username:    cfg.Username,
		Password:    cfg.Password,
		DialTimeout: dialTimeout,
		Logger:      logger,
	}
	if cfg.TLS != nil {
		t, err := cfg.TLS.load()
		if err != nil {
			return nil, err
		}
		cc.TLS = t
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("configstore: etcd %v: %w", cfg.Endpoints, err)
	}
	return c, nil
}

func (t *TLSFiles) load() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("configstore: etcd tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("configstore: etcd tls ca %s: no PEM certificates in it", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("configstore: etcd tls cert/key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
