package gateway

import (
	"net"
	"net/netip"
)

// IsLoopback reports whether addr (host:port) is on this host: localhost
// or a loopback IP, IPv4-mapped included. Without tokens the admin API
// serves only such clients, and the embedded etcd, which has no auth,
// listens only on such an address; both ask here so they agree.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
