package testharness_test

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/internal/testharness"
)

// fatalTB records the message of Fatalf and ends the goroutine, as
// testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// eventually runs Eventually in a goroutine of its own, so that a Fatalf
// ends that goroutine, and returns the message of the failure, if any.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) string {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testharness.Eventually(f, timeout, cond)
	}()
	<-done
	return f.msg
}

func TestEventually(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		doneAt  int // the call that reports done; 0: never
		wantMsg string
	}{
		{"done at once", testharness.Wait, 1, ""},
		{"done after polls", testharness.Wait, 5, ""},
		{"never done: the last state is reported", 50 * time.Millisecond, 0, "not done after 50ms: polled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			msg := eventually(t, tt.timeout, func() (bool, string) {
				calls++
				return calls == tt.doneAt, fmt.Sprintf("polled %d times", calls)
			})
			if tt.wantMsg == "" && msg != "" {
				t.Fatalf("failed with %q; want success", msg)
			}
			if !strings.Contains(msg, tt.wantMsg) || (tt.wantMsg != "" && !strings.HasSuffix(msg, fmt.Sprintf("polled %d times", calls))) {
				t.Errorf("message %q after %d calls; want %q and the last call's state", msg, calls, tt.wantMsg)
			}
			if tt.doneAt > 0 && calls != tt.doneAt {
				t.Errorf("%d calls; want polling to stop at call %d", calls, tt.doneAt)
			}
		})
	}
}

// TestRelay: requests pass through the relay until it is paused, fail
// while it is, and pass again once it resumes.
func TestRelay(t *testing.T) {
	b := testharness.StartBackend(t, "blue", "v1")
	r := testharness.StartRelay(t, b.URL)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func() error {
		resp, err := c.Get(r.Endpoint() + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("through the relay: %v", err)
	}
	r.Pause()
	if err := get(); err == nil {
		t.Fatal("a request passed a paused relay")
	}
	r.Resume()
	if err := get(); err != nil {
		t.Fatalf("after Resume: %v", err)
	}
}

// TestTraffic: requests flow; failures are counted and the first one
// described.
func TestTraffic(t *testing.T) {
	tests := []struct {
		name       string
		fault      string
		wantFailed bool
	}{
		{"healthy backend", "", false},
		{"failing backend", `{"error_rate": 1}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testharness.StartBackend(t, "blue", "v1")
			if tt.fault != "" {
				testharness.SetFault(t, b.URL, tt.fault)
			}
			tr := testharness.StartTraffic(t, 200, b.URL)
			testharness.WaitFor(t, "20 requests", func() bool { return tr.Sent.Load() >= 20 })
			tr.Stop()
			sent := tr.Sent.Load()
			if failed := tr.Failed.Load(); (failed == sent) != tt.wantFailed || (failed == 0) == tt.wantFailed {
				t.Errorf("%d of %d failed; want all failed: %v", failed, sent, tt.wantFailed)
			}
			if got := tr.FirstError(); (got != "") != tt.wantFailed || (tt.wantFailed && !strings.Contains(got, "status 500")) {
				t.Errorf("first error %q; want one naming status 500: %v", got, tt.wantFailed)
			}
		})
	}
}
