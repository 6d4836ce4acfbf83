package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sysProcAttr puts a server in its own process group, so a Ctrl-C at the
// terminal reaches only loadbench, which then stops it in order; and has
// the kernel kill it if loadbench dies without doing so (SIGKILL, a
// crash). Pdeathsig fires when the thread that started the child exits,
// which Go threads do only when a goroutine that locked one exits without
// unlocking it; startPinned unlocks its thread before it returns.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// cpuPlan says which CPUs the servers under test run on and which the load
// generator and backend run on, so neither steals the other's core.
type cpuPlan struct {
	server unix.CPUSet
	load   unix.CPUSet
	desc   string
}

// planCPUs gives the servers the last CPU this process may run on and the
// load generator and backend the others; nil with the reason when there
// are fewer than two.
func planCPUs() (*cpuPlan, string) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil, fmt.Sprintf("not pinned: sched_getaffinity: %v", err)
	}
	var cpus []int
	for i := range len(allowed) * 64 {
		if allowed.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return nil, fmt.Sprintf("not pinned: %d CPU available, pinning needs 2", len(cpus))
	}
	p := &cpuPlan{}
	p.server.Set(cpus[len(cpus)-1])
	var load []string
	for _, c := range cpus[:len(cpus)-1] {
		p.load.Set(c)
		load = append(load, strconv.Itoa(c))
	}
	p.desc = fmt.Sprintf("servers under test pinned to CPU %d, load generator and backend to CPU %s", cpus[len(cpus)-1], strings.Join(load, ","))
	return p, ""
}

// pinSelf restricts every thread of this process to the load CPUs. A
// thread inherits the mask of the thread that creates it, so threads
// started later are pinned too; the passes catch threads created while
// the first pass ran.
func (p *cpuPlan) pinSelf() error {
	done := make(map[int]bool)
	for range 5 {
		entries, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pin load generator: %w", err)
		}
		fresh := false
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			fresh = true
			if err := unix.SchedSetaffinity(tid, &p.load); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin load generator thread %d: %w", tid, err)
			}
			done[tid] = true
		}
		if !fresh {
			return nil
		}
	}
	return nil
}

// startPinned starts cmd on the server CPU. A child inherits the CPU mask
// of the thread that forks it, and exec.Cmd.Start forks on the calling
// thread, so that thread is moved to the server CPU for the fork and back
// afterwards; every thread the server ever starts inherits the mask, which
// is more than setting it from outside after the start could promise.
func (p *cpuPlan) startPinned(cmd *exec.Cmd) error {
	if p == nil {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		return fmt.Errorf("pin server: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &p.server); err != nil {
		return fmt.Errorf("pin server: %w", err)
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &was); rerr != nil && err == nil {
		err = fmt.Errorf("unpin starting thread: %w", rerr)
	}
	return err
}

// processCPU returns the CPU time pid has used so far, summed over its
// threads from /proc/PID/task/*/schedstat, which counts nanoseconds (a
// thread that has exited no longer counts; the servers keep theirs). It
// falls back to /proc/PID/stat, in 10 ms ticks, where schedstat is missing.
func processCPU(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("CPU time of %d: %w", pid, err)
	}
	var total time.Duration
	for _, e := range entries {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if errors.Is(err, os.ErrNotExist) {
			if _, statErr := os.Stat(dir + "/" + e.Name()); statErr != nil {
				continue // the thread exited meanwhile
			}
			return statCPU(pid)
		}
		if err != nil {
			return 0, fmt.Errorf("CPU time of %d: %w", pid, err)
		}
		d, err := parseSchedstat(string(b))
		if err != nil {
			return 0, fmt.Errorf("CPU time of %d: %w", pid, err)
		}
		total += d
	}
	return total, nil
}

func statCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("CPU time of %d: %w", pid, err)
	}
	return parseStatCPU(string(b))
}

// selfCPU is the CPU time of this process (load generator and backend),
// user plus system, including threads that have exited.
func selfCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("own CPU time: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
