// Command etcdmember runs one member of a multi-member etcd cluster, for
// the partition tests, which start one in each network namespace. It
// prints "ready" once the cluster has a leader and stops on SIGINT or
// SIGTERM.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
)

func main() {
	var c configstore.MemberConfig
	flag.StringVar(&c.Name, "name", "", "member name")
	flag.StringVar(&c.DataDir, "data", "", "data directory")
	flag.StringVar(&c.ClientURL, "client", "", "client URL, like http://10.231.0.11:2379")
	flag.StringVar(&c.PeerURL, "peer", "", "peer URL, like http://10.231.0.11:2380")
	flag.StringVar(&c.InitialCluster, "cluster", "", "every member as name=peerURL, comma-separated")
	flag.DurationVar(&c.HeartbeatInterval, "heartbeat", 0, "raft heartbeat interval (default etcd's)")
	flag.DurationVar(&c.ElectionTimeout, "election", 0, "raft election timeout (default etcd's)")
	flag.DurationVar(&c.ReadyTimeout, "ready-timeout", 60*time.Second, "how long to wait for the cluster")
	flag.Parse()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	m, err := configstore.StartMember(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {
	case <-sig:
	case err := <-m.Err():
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
	}
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		os.Exit(1)
	}
}
