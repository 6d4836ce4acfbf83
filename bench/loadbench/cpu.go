package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which Linux fixes at 100 on every architecture Go runs on. Its 10ms
// granularity is too coarse to see 3% in a run of a few seconds, so stat is
// only the fallback where schedstat is missing.
const clockTick = 10 * time.Millisecond

// parseStatCPU returns utime+stime from the contents of /proc/PID/stat.
// The command name (field 2) is in parentheses and may itself hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat %.40q: no command name", stat)
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least %d", len(fields), stime+1)
	}
	var ticks int64
	for _, f := range []int{utime, stime} {
		n, err := strconv.ParseInt(fields[f], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc stat field %d: %w", f+3, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// parseSchedstat returns the time on CPU from the contents of
// /proc/PID/task/TID/schedstat: its first field, in nanoseconds.
func parseSchedstat(s string) (time.Duration, error) {
	f, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	ns, err := strconv.ParseInt(f, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse schedstat %.40q: %w", s, err)
	}
	return time.Duration(ns), nil
}
