package main

import (
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStartPinned: a server started through the plan runs on the server
// CPU only, and the thread that started it is back on the load CPUs.
func TestStartPinned(t *testing.T) {
	plan, why := planCPUs()
	if plan == nil {
		t.Skip(why)
	}
	cmd := exec.Command("sleep", "30")
	if err := plan.startPinned(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var got unix.CPUSet
	if err := unix.SchedGetaffinity(cmd.Process.Pid, &got); err != nil {
		t.Fatal(err)
	}
	if got != plan.server {
		t.Errorf("server's CPUs = %v, want %v", got, plan.server)
	}
	if plan.server == plan.load || plan.server.Count() != 1 || plan.load.Count() == 0 {
		t.Errorf("plan server %v, load %v: want one CPU for the server and the others for the load", plan.server, plan.load)
	}
}
