package configstore

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"

	"github.com/a8e2c47e/switchback/gateway"
)

// Gray is a gray release of a service's configuration: a whole document
// that the instances whose bucket is below Percent get instead of the main
// one. An instance is identified by the id it watches with; its bucket is
// gateway.Bucket(GraySeed(service), id), as specified for flags in
// gateway/BUCKETING.md, so an instance stays in or out as the percentage
// moves, and raising it only adds instances.
type Gray struct {
	Config  json.RawMessage `json:"config"`
	Percent float64         `json:"percent"`
	// Summary is the diff from the main document when the gray started.
	Summary string `json:"summary"`
}

// GraySeed is the bucketing seed of a service's gray releases.
func GraySeed(service string) string { return "service:" + service }

func sameGray(a, b *Gray) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Percent == b.Percent && bytes.Equal(a.Config, b.Config)
}

// For returns the document instance should run: the gray one if there is
// a gray release and the instance's bucket is below its percentage, the
// main one otherwise (and for an empty instance id).
func (d ServiceDoc) For(instance string) (cfg json.RawMessage, gray bool) {
	if d.Gray == nil || instance == "" {
		return d.Config, false
	}
	if float64(gateway.Bucket(GraySeed(d.Name), instance)) < d.Gray.Percent*100 {
		return d.Gray.Config, true
	}
	return d.Config, false
}

func checkPercent(p float64) error {
	if !(p > 0 && p <= 100) || p*100 != float64(int64(p*100)) {
		return &gateway.FieldError{Field: "percent", Value: strconv.FormatFloat(p, 'f', -1, 64),
			Want: "want a percentage above 0 and at most 100, with at most two decimals"}
	}
	return nil
}

// StartGray writes a version whose main document is unchanged and whose
// gray release is the current document with patch applied (RFC 7396), for
// percent of the instances. A gray release already running is replaced:
// this is also how its percentage moves.
func (s *Store) StartGray(ctx context.Context, name string, patch json.RawMessage, percent float64, ifVersion uint64, meta Meta) (ServiceResult, error) {
	if err := checkPercent(percent); err != nil {
		return ServiceResult{}, err
	}
	if _, err := MergePatch(nil, patch); err != nil {
		return ServiceResult{}, err
	}
	return s.writeService(ctx, name, ifVersion, meta, writeOptions{}, true, func(_ context.Context, st serviceState) (next, error) {
		cfg, err := MergePatch(st.doc.Config, patch)
		if err != nil {
			return next{}, err
		}
		if cfg, err = ParseServiceConfig(cfg); err != nil {
			return next{}, gateway.PrefixField(err, "gray")
		}
		changes := DiffJSON(st.doc.Config, cfg)
		if len(changes) == 0 {
			return next{}, &gateway.FieldError{Field: "patch", Value: formatValue(jsonTree(patch)), Want: "a gray release must differ from the main document"}
		}
		g := &Gray{Config: cfg, Percent: percent, Summary: summarize(changes)}
		return next{cfg: st.doc.Config, gray: g,
			summary: "gray " + strconv.FormatFloat(percent, 'f', -1, 64) + "%: " + g.Summary}, nil
	})
}

// PromoteGray makes the gray document the main one, as a new version.
func (s *Store) PromoteGray(ctx context.Context, name string, ifVersion uint64, meta Meta) (ServiceResult, error) {
	return s.writeService(ctx, name, ifVersion, meta, writeOptions{pinned: true}, true, func(_ context.Context, st serviceState) (next, error) {
		if st.doc.Gray == nil {
			return next{}, &NotFoundError{Deployment: name, Kind: "service", What: "gray release"}
		}
		return next{cfg: st.doc.Gray.Config, summary: "promoted gray: " + st.doc.Gray.Summary}, nil
	})
}

// AbandonGray drops the gray release, as a new version.
func (s *Store) AbandonGray(ctx context.Context, name string, ifVersion uint64, meta Meta) (ServiceResult, error) {
	return s.writeService(ctx, name, ifVersion, meta, writeOptions{pinned: true}, true, func(_ context.Context, st serviceState) (next, error) {
		if st.doc.Gray == nil {
			return next{}, &NotFoundError{Deployment: name, Kind: "service", What: "gray release"}
		}
		return next{cfg: st.doc.Config, summary: "abandoned gray: " + st.doc.Gray.Summary}, nil
	})
}
