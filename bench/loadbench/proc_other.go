//go:build !linux

package main

import "syscall"

// sysProcAttr: only Linux can tie the gateway's life to loadbench's; the
// deferred stop covers every exit but a SIGKILL.
func sysProcAttr() *syscall.SysProcAttr { return nil }
