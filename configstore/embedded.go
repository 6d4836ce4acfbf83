package configstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

const (
	// embeddedReadyTimeout bounds how long StartEmbedded waits for the
	// server to become ready; a single member on a local disk takes about
	// a second.
	embeddedReadyTimeout = 30 * time.Second
	// embeddedStopTimeout bounds how long a stop is waited for. A server
	// that never became ready can block in etcd's Close for ever; the
	// caller is then better served by an error than by a hang.
	embeddedStopTimeout = 15 * time.Second
)

// Embedded is an etcd server running inside this process: the
// single-machine default, and what the tests use. It is one member
// listening on loopback (or whatever host clientAddr names), without TLS.
type Embedded struct {
	etcd      *embed.Etcd
	lock      *dataDirLock
	endpoints []string
	closeOnce sync.Once
	closeErr  error
	// closing silences the server's log while it stops: every listener
	// reports "use of closed network connection" at error level.
	closing *atomic.Bool
}

// StartEmbedded starts an etcd member keeping its data in dataDir and
// serving clients on clientAddr ("127.0.0.1:2379"). A port of 0 picks a free
// port; Endpoints tells which. Restarting on the same dataDir keeps every
// key and revision. The peer port, which a single member never dials, is
// always picked free.
//
// It waits until the server is ready, at most 30 seconds. The server logs
// only errors, to stderr, and nothing while it stops.
//
// Before etcd starts, the data directory is locked (switchback.lock, which
// holds the pid) and its database and write-ahead log are read back. A
// directory another process uses gives a *DataDirError matching
// ErrDataDirInUse at once; files etcd would panic or hang on give one
// matching ErrDataDamaged, naming the file.
func StartEmbedded(dataDir, clientAddr string) (*Embedded, error) {
	if dataDir == "" {
		return nil, errors.New("configstore: embedded etcd: empty data dir")
	}
	host, port, err := net.SplitHostPort(clientAddr)
	if err != nil {
		return nil, fmt.Errorf("configstore: embedded etcd: client address %q: want host:port, like 127.0.0.1:2379", clientAddr)
	}
	// A picked port may be taken by someone else between picking and
	// binding; picking again is then the cure.
	attempts := 1
	if port == "0" {
		attempts = 3
	}
	// Messages name the directory as the operator will look for it.
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	if err := checkDataDir(dataDir); err != nil {
		lock.release()
		return nil, err
	}
	for i := 1; ; i++ {
		e, stopping, err := startEmbedded(dataDir, host, port, lock)
		switch {
		case err == nil:
			return e, nil
		case stopping:
			return nil, err // stopping etcd releases the lock
		case i == attempts:
			lock.release()
			return nil, err
		}
	}
}

// startEmbedded starts etcd once. The returned Embedded owns lock; when
// etcd started but did not become ready, stopping says that its stop owns
// lock; otherwise the caller still does.
func startEmbedded(dataDir, host, port string, lock *dataDirLock) (e *Embedded, stopping bool, err error) {
	if port == "0" {
		if port, err = freePort(host); err != nil {
			return nil, false, err
		}
	}
	peerPort, err := freePort(host)
	if err != nil {
		return nil, false, err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort(host, peerPort)}

	cfg := embed.NewConfig()
	cfg.Name = "switchback"
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.EnableGRPCGateway = false
	closing := new(atomic.Bool)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(&quietCore{Core: errorCore(), closing: closing}))
	// Only old revisions of current keys are compacted; history keys are
	// append-only, so compaction never loses a version.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "1h"

	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, false, fmt.Errorf("configstore: embedded etcd: %w", err)
	}
	timer := time.NewTimer(embeddedReadyTimeout)
	defer timer.Stop()
	select {
	case <-etcd.Server.ReadyNotify():
	case err := <-etcd.Err():
		closing.Store(true)
		return nil, true, errors.Join(fmt.Errorf("configstore: embedded etcd: %w", err), stopWithin(etcd, lock, embeddedStopTimeout))
	case <-timer.C:
		closing.Store(true)
		return nil, true, errors.Join(
			fmt.Errorf("configstore: embedded etcd: not ready after %s; if this persists, the data in %s may be damaged: restore it from a backup", embeddedReadyTimeout, dataDir),
			stopWithin(etcd, lock, embeddedStopTimeout))
	}
	return &Embedded{etcd: etcd, lock: lock, endpoints: []string{clientURL.String()}, closing: closing}, false, nil
}

// errStopAbandoned means etcd did not stop in time and was left stopping.
var errStopAbandoned = errors.New("configstore: embedded etcd did not stop in time")

// stopWithin stops etcd and then releases the directory's lock, waiting at
// most d. A stop that takes longer is left to finish on its own (it keeps
// the lock until then): it is stuck inside etcd, and the caller, usually a
// process about to exit with an error, must not hang with it.
func stopWithin(etcd *embed.Etcd, lock *dataDirLock, d time.Duration) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		etcd.Close()
		lock.release()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
		return fmt.Errorf("%w (waited %s)", errStopAbandoned, d)
	}
}

// freePort asks the kernel for a port nobody listens on.
func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("configstore: embedded etcd: pick a free port: %w", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// Endpoints are the client URLs, for clientv3.Config.Endpoints.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Client returns a new client of this server; the caller closes it. It
// logs only errors and reconnects within a second of the server coming
// back, which suits a server on the same machine.
func (e *Embedded) Client() (*clientv3.Client, error) { return localClient(e.endpoints) }

func localClient(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      quietLogger(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("configstore: embedded etcd client: %w", err)
	}
	return c, nil
}

// Close stops the server, waits until it has stopped and releases the data
// directory. Open watch streams delay the stop by up to etcd's request
// timeout (about 7 s), so close clients first where possible. A stop stuck
// for longer than 15 s is abandoned with an error matching no sentinel;
// the directory stays locked until it ends.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.closeErr = stopWithin(e.etcd, e.lock, embeddedStopTimeout)
	})
	return e.closeErr
}

func quietLogger() *zap.Logger { return zap.New(errorCore()) }

// errorCore writes errors, as JSON lines without stack traces, to stderr.
func errorCore() zapcore.Core {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), zapcore.ErrorLevel)
}

// quietCore drops every entry once closing is set.
type quietCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c *quietCore) Enabled(l zapcore.Level) bool { return !c.closing.Load() && c.Core.Enabled(l) }

func (c *quietCore) With(f []zapcore.Field) zapcore.Core {
	return &quietCore{Core: c.Core.With(f), closing: c.closing}
}

func (c *quietCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}
