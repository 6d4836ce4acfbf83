package configstore

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// MemberConfig describes one member of a multi-member etcd cluster started
// inside this process: what a test or a small cluster helper needs to put
// real members on separate hosts, which StartEmbedded (one member, picked
// loopback ports) cannot.
type MemberConfig struct {
	// Name is the member's name in InitialCluster.
	Name string
	// DataDir holds the member's data; it is locked like StartEmbedded's.
	DataDir string
	// ClientURL and PeerURL are where the member listens and what it
	// advertises, like http://10.0.0.5:2379 and http://10.0.0.5:2380.
	ClientURL, PeerURL string
	// InitialCluster lists every member as name=peerURL, comma-separated.
	InitialCluster string
	// ClusterToken keeps members of different clusters from joining each
	// other; default "switchback".
	ClusterToken string
	// HeartbeatInterval and ElectionTimeout tune raft; defaults are etcd's
	// (100 ms and 1 s).
	HeartbeatInterval, ElectionTimeout time.Duration
	// ReadyTimeout bounds how long StartMember waits for the cluster to
	// elect a leader with this member in it; default 60 s. The other
	// members must be starting meanwhile.
	ReadyTimeout time.Duration
}

// Member is one running member of a cluster; Close stops it.
type Member struct {
	etcd      *embed.Etcd
	lock      *dataDirLock
	closing   *atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// StartMember starts a member of a new cluster (or restarts one on its
// data) and waits until the cluster is ready with it. It logs only errors.
func StartMember(c MemberConfig) (*Member, error) {
	if c.Name == "" || c.DataDir == "" || c.InitialCluster == "" {
		return nil, errors.New("configstore: member: Name, DataDir and InitialCluster are required")
	}
	clientURL, err := url.Parse(c.ClientURL)
	if err != nil || clientURL.Host == "" {
		return nil, fmt.Errorf("configstore: member %s: client URL %q: want like http://10.0.0.5:2379", c.Name, c.ClientURL)
	}
	peerURL, err := url.Parse(c.PeerURL)
	if err != nil || peerURL.Host == "" {
		return nil, fmt.Errorf("configstore: member %s: peer URL %q: want like http://10.0.0.5:2380", c.Name, c.PeerURL)
	}
	if c.ClusterToken == "" {
		c.ClusterToken = "switchback"
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 60 * time.Second
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return nil, fmt.Errorf("configstore: member %s: %w", c.Name, err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	if err := checkDataDir(dir); err != nil {
		lock.release()
		return nil, err
	}

	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = c.InitialCluster
	cfg.InitialClusterToken = c.ClusterToken
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.EnableGRPCGateway = false
	if c.HeartbeatInterval > 0 {
		cfg.TickMs = uint(c.HeartbeatInterval / time.Millisecond)
	}
	if c.ElectionTimeout > 0 {
		cfg.ElectionMs = uint(c.ElectionTimeout / time.Millisecond)
	}
	closing := new(atomic.Bool)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(&quietCore{Core: errorCore(), closing: closing}))
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "1h"

	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("configstore: member %s: %w", c.Name, err)
	}
	timer := time.NewTimer(c.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-etcd.Server.ReadyNotify():
	case err := <-etcd.Err():
		closing.Store(true)
		return nil, errors.Join(fmt.Errorf("configstore: member %s: %w", c.Name, err), stopWithin(etcd, lock, embeddedStopTimeout))
	case <-timer.C:
		closing.Store(true)
		return nil, errors.Join(fmt.Errorf("configstore: member %s: no ready cluster after %s: are the other members of %s starting?", c.Name, c.ReadyTimeout, c.InitialCluster),
			stopWithin(etcd, lock, embeddedStopTimeout))
	}
	return &Member{etcd: etcd, lock: lock, closing: closing}, nil
}

// Err reports a fatal error of the running member (its listeners failing).
func (m *Member) Err() <-chan error { return m.etcd.Err() }

// Close stops the member and releases its data directory, within 15 s.
func (m *Member) Close() error {
	m.closeOnce.Do(func() {
		m.closing.Store(true)
		m.closeErr = stopWithin(m.etcd, m.lock, embeddedStopTimeout)
	})
	return m.closeErr
}
