// Package cmdline holds what Switchback's command lines share: options
// accepted before, between or after positional arguments, one set of exit
// codes, and usage errors that carry their exit code.
//
// The standard flag package stops at the first positional argument, so
// "weights shop blue=70 --reason x" would leave --reason unparsed; Parse
// keeps going.
//
// It imports nothing of this module, so every command line may use it.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
)

// Exit codes of every Switchback command line.
const (
	ExitOK    = 0
	ExitError = 1 // the command ran and failed: refused, unreachable, a failed migration
	ExitUsage = 2 // the command line is wrong; nothing was changed
)

// UsageError is a wrong command line. Its message names the argument or
// option, the value and what is accepted.
type UsageError struct {
	Msg string
	// Err is the flag package's error, when the error came from parsing.
	Err error
}

func (e *UsageError) Error() string { return e.Msg }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Code returns the exit code for the outcome err: ExitOK for nil,
// ExitUsage for a *UsageError (or -h), ExitError otherwise.
func Code(err error) int {
	var ue *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	}
	return ExitError
}

// IsHelp reports whether arg asks for help: help, -h, -help or --help.
func IsHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// Parse parses fs's options from args wherever they appear and returns
// the positional arguments in order. Everything after "--" is positional.
// A parse error is a *UsageError wrapping the flag package's error (so
// errors.Is(err, flag.ErrHelp) reports -h); for an unknown option it
// lists the accepted ones.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageOf(fs, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return append(pos, rest...), nil
}

func usageOf(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		var accepted []string
		fs.VisitAll(func(f *flag.Flag) { accepted = append(accepted, "--"+f.Name) })
		msg = fmt.Sprintf("unknown option %s; accepted: %s", name, strings.Join(accepted, ", "))
	}
	return &UsageError{Msg: msg, Err: err}
}
