package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantPos []string
		reason  string
		force   bool
		wantErr string // fragment of the error; empty for none
	}{
		{"options first", []string{"--reason", "x", "shop", "blue=70"}, []string{"shop", "blue=70"}, "x", false, ""},
		{"options last", []string{"shop", "blue=70", "--reason", "x"}, []string{"shop", "blue=70"}, "x", false, ""},
		{"options between", []string{"shop", "--force", "blue=70", "--reason=x"}, []string{"shop", "blue=70"}, "x", true, ""},
		{"after -- is positional", []string{"shop", "--", "--reason", "-x"}, []string{"shop", "--reason", "-x"}, "", false, ""},
		{"no arguments", nil, nil, "", false, ""},
		{"unknown option", []string{"shop", "--forse"}, nil, "", false, "unknown option -forse; accepted: --force, --reason"},
		{"missing value", []string{"shop", "--reason"}, nil, "", false, "flag needs an argument: -reason"},
		{"bad value", []string{"--force=maybe"}, nil, "", false, `invalid boolean value "maybe" for -force`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			reason := fs.String("reason", "", "")
			force := fs.Bool("force", false, "")
			pos, err := Parse(fs, tt.args)
			if tt.wantErr != "" {
				var ue *UsageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want a *UsageError containing %q", tt.args, err, tt.wantErr)
				}
				if got := Code(err); got != ExitUsage {
					t.Errorf("Code = %d, want %d", got, ExitUsage)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			if !slices.Equal(pos, tt.wantPos) || *reason != tt.reason || *force != tt.force {
				t.Errorf("Parse(%q) = %q, reason %q, force %v; want %q, %q, %v", tt.args, pos, *reason, *force, tt.wantPos, tt.reason, tt.force)
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := Parse(fs, []string{"shop", "-h"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
}

func TestCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("refused"), ExitError},
		{Usagef("--to %q: accepted: a version", "x"), ExitUsage},
		{fmt.Errorf("wrapped: %w", Usagef("bad")), ExitUsage},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("Code(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestIsHelp(t *testing.T) {
	for _, a := range []string{"help", "-h", "-help", "--help"} {
		if !IsHelp(a) {
			t.Errorf("IsHelp(%q) = false", a)
		}
	}
	for _, a := range []string{"", "status", "--helps", "h"} {
		if IsHelp(a) {
			t.Errorf("IsHelp(%q) = true", a)
		}
	}
}
