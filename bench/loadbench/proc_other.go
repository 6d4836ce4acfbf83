//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// sysProcAttr: only Linux can tie a server's life to loadbench's; the
// deferred stop covers every exit but a SIGKILL.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// cpuPlan: pinning needs Linux's sched_setaffinity.
type cpuPlan struct{ desc string }

func planCPUs() (*cpuPlan, string) { return nil, "not pinned: pinning needs Linux" }

func (p *cpuPlan) pinSelf() error { return nil }

func (p *cpuPlan) startPinned(cmd *exec.Cmd) error { return cmd.Start() }

var errNoProc = errors.New("CPU time per process needs Linux's /proc")

func processCPU(int) (time.Duration, error) { return 0, errNoProc }

func selfCPU() (time.Duration, error) { return 0, errNoProc }
