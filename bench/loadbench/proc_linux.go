package main

import "syscall"

// sysProcAttr puts the gateway in its own process group, so a Ctrl-C at
// the terminal reaches only loadbench, which then stops the gateway in
// order; and has the kernel kill the gateway if loadbench dies without
// doing so (SIGKILL, a crash). Pdeathsig fires when the thread that started
// the child exits, which Go threads do only when a goroutine that locked
// one exits without unlocking it; loadbench has none.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
