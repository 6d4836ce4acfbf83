package configstore

import (
	"reflect"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/gateway"
)

func TestDiff(t *testing.T) {
	t.Parallel()
	withFlags := func(flags map[string]gateway.Flag) gateway.Config {
		c := testConfig("shop")
		c.Flags = flags
		return c
	}
	edit := func(f func(*gateway.Config)) gateway.Config {
		c := testConfig("shop")
		f(&c)
		return c
	}
	tests := []struct {
		name        string
		from, to    gateway.Config
		want        []Change
		wantSummary string
	}{
		{
			name: "same",
			from: testConfig("shop"), to: testConfig("shop"),
		},
		{
			name: "version ignored",
			from: testConfig("shop"), to: edit(func(c *gateway.Config) { c.Version = 9 }),
		},
		{
			name: "weights",
			from: testConfig("shop"), to: edit(func(c *gateway.Config) { c.Weights = map[string]float64{"blue": 0, "green": 100} }),
			want: []Change{
				{Path: "weights.blue", From: 100.0, To: 0.0},
				{Path: "weights.green", From: 0.0, To: 100.0},
			},
			wantSummary: "weights.blue 100 → 0, weights.green 0 → 100",
		},
		{
			name: "pool upstreams",
			from: testConfig("shop"),
			to: edit(func(c *gateway.Config) {
				c.Pools["green"] = gateway.Pool{Upstreams: []string{"127.0.0.1:9002", "127.0.0.1:9003"}, Release: "v2"}
			}),
			want: []Change{{Path: "pools.green.upstreams",
				From: []any{"127.0.0.1:9002"}, To: []any{"127.0.0.1:9002", "127.0.0.1:9003"}}},
			wantSummary: `pools.green.upstreams ["127.0.0.1:9002"] → ["127.0.0.1:9002","127.0.0.1:9003"]`,
		},
		{
			name: "release",
			from: testConfig("shop"),
			to: edit(func(c *gateway.Config) {
				c.Pools["green"] = gateway.Pool{Upstreams: []string{"127.0.0.1:9002"}, Release: "v2 hotfix"}
			}),
			want:        []Change{{Path: "pools.green.release", From: "v2", To: "v2 hotfix"}},
			wantSummary: `pools.green.release v2 → "v2 hotfix"`,
		},
		{
			name: "first flag added",
			from: testConfig("shop"), to: withFlags(map[string]gateway.Flag{"new_payment_flow": {Percent: 5}}),
			want:        []Change{{Path: "flags.new_payment_flow", To: map[string]any{"percent": 5.0}}},
			wantSummary: `flags.new_payment_flow added: {"percent":5}`,
		},
		{
			name: "flag added",
			from: withFlags(map[string]gateway.Flag{"a": {Percent: 1}}),
			to:   withFlags(map[string]gateway.Flag{"a": {Percent: 1}, "b": {Percent: 2}}),
			want: []Change{{Path: "flags.b", To: map[string]any{"percent": 2.0}}},
		},
		{
			name:        "flag removed",
			from:        withFlags(map[string]gateway.Flag{"a": {Percent: 1}, "b": {Percent: 2}}),
			to:          withFlags(map[string]gateway.Flag{"b": {Percent: 2}}),
			want:        []Change{{Path: "flags.a", From: map[string]any{"percent": 1.0}}},
			wantSummary: "flags.a removed",
		},
		{
			name: "last flag removed",
			from: withFlags(map[string]gateway.Flag{"a": {Percent: 1}}),
			to:   withFlags(map[string]gateway.Flag{}),
			want: []Change{{Path: "flags.a", From: map[string]any{"percent": 1.0}}},
		},
		{
			name:        "flag percent",
			from:        withFlags(map[string]gateway.Flag{"new_payment_flow": {Percent: 5}}),
			to:          withFlags(map[string]gateway.Flag{"new_payment_flow": {Percent: 12.5}}),
			want:        []Change{{Path: "flags.new_payment_flow.percent", From: 5.0, To: 12.5}},
			wantSummary: "flags.new_payment_flow.percent 5 → 12.5",
		},
		{
			name: "pool added, sorted by path",
			from: testConfig("shop"),
			to: edit(func(c *gateway.Config) {
				c.Pools["blue-2"] = gateway.Pool{Upstreams: []string{"127.0.0.1:9004"}}
				c.Weights["blue-2"] = 0
			}),
			want: []Change{
				{Path: "pools.blue-2", To: map[string]any{"upstreams": []any{"127.0.0.1:9004"}}},
				{Path: "weights.blue-2", To: 0.0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.from, tt.to)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff =\n%#v\nwant\n%#v", got, tt.want)
			}
			if tt.wantSummary != "" {
				if s := summarize(got); s != tt.wantSummary {
					t.Errorf("summary = %q, want %q", s, tt.wantSummary)
				}
			}
		})
	}
}

func TestSummaryOneLine(t *testing.T) {
	t.Parallel()
	from, to := testConfig("shop"), testConfig("shop")
	to.Flags = make(map[string]gateway.Flag)
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		to.Flags[name] = gateway.Flag{Percent: 1}
	}
	to.Pools["green"] = gateway.Pool{Upstreams: []string{"127.0.0.1:9002"}, Release: "line\nbreak"}
	got := summarize(Diff(from, to))
	if strings.ContainsAny(got, "\n\r") {
		t.Errorf("summary %q spans lines", got)
	}
	if !strings.HasSuffix(got, ", and 3 more") {
		t.Errorf("summary %q, want the first %d changes and a count of the rest", got, summaryChanges)
	}
}

func BenchmarkDiff(b *testing.B) {
	from, to := testConfig("shop"), testConfig("shop")
	to.Weights = map[string]float64{"blue": 0, "green": 100}
	for b.Loop() {
		Diff(from, to)
	}
}
