package console

import "testing"

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/ui/"},
		{"/ui/deployments/checkout", "/ui/deployments/checkout"},
		{"/ui/deployments/checkout/history?page=2", "/ui/deployments/checkout/history?page=2"},
		{"https://evil.example/ui/", "/ui/"},
		{"//evil.example/ui/", "/ui/"},
		{"/\\evil.example/ui/", "/ui/"},
		{"/api/v1/deployments", "/ui/"},
		{"/ui/x\r\nSet-Cookie: a=b", "/ui/"},
		{"javascript:alert(1)", "/ui/"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.in); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
