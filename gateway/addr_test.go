package gateway

import "testing"

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9180", true},
		{"127.8.9.10:1", true},
		{"[::1]:9180", true},
		{"[::ffff:127.0.0.1]:9180", true},
		{"localhost:2379", true},
		{"10.0.0.5:9180", false},
		{"0.0.0.0:2379", false},
		{"[::]:2379", false},
		{"example.com:80", false},
		{"127.0.0.1", false}, // no port: not an address
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.addr); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}
