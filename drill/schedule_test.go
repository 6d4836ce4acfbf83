package drill

import (
	"reflect"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/drill/result"
)

func TestDue(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	every := 720 * time.Hour
	drilled := func(dep, pattern string, ago time.Duration, target string) result.Result {
		return result.Result{Deployment: dep, Pattern: pattern, Target: target, Started: now.Add(-ago)}
	}
	tests := []struct {
		name    string
		staging []string
		history []result.Result
		want    []Scheduled
	}{
		{"never drilled", []string{"shop"}, nil, []Scheduled{{"shop", []string{"flip", "flag", "config"}}}},
		{"drilled lately", []string{"shop"}, []result.Result{
			drilled("shop", "flip", time.Hour, "http://a:9180"),
			drilled("shop", "flag", 719*time.Hour, "http://a:9180"),
			drilled("shop", "config", 2*time.Hour, "http://a:9180"),
		}, nil},
		{"one pattern due", []string{"shop"}, []result.Result{
			drilled("shop", "flip", 720*time.Hour, "http://a:9180"),
			drilled("shop", "flip", 800*time.Hour, "http://a:9180"),
			drilled("shop", "flag", time.Hour, "http://a:9180"),
			drilled("shop", "config", time.Hour, "http://a:9180"),
		}, []Scheduled{{"shop", []string{"flip"}}}},
		{"a sandbox drill does not count", []string{"shop"}, []result.Result{
			drilled("shop", "flip", time.Hour, "sandbox"),
			drilled("shop", "flag", time.Hour, "http://a:9180"),
			drilled("shop", "config", time.Hour, "http://a:9180"),
		}, []Scheduled{{"shop", []string{"flip"}}}},
		{"another deployment's drill does not count", []string{"shop", "cart"}, []result.Result{
			drilled("shop", "flip", time.Hour, "http://a:9180"),
			drilled("shop", "flag", time.Hour, "http://a:9180"),
			drilled("shop", "config", time.Hour, "http://a:9180"),
		}, []Scheduled{{"cart", []string{"flip", "flag", "config"}}}},
		{"no staging deployment", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Due(every, []string{"flip", "flag", "config"}, tt.staging, tt.history, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
