package admin

import (
	"context"
	"net/http"
	"net/url"

	"github.com/a8e2c47e/switchback/release"
)

// StartRelease opens a release or, with req.Apply, makes it in one call;
// req.Reason defaults to o.Reason. o.IfMatch makes it conditional on the
// deployment's version.
func (c *Client) StartRelease(ctx context.Context, req ReleaseRequest, o WriteOptions) (ReleaseView, error) {
	if req.Reason == "" {
		req.Reason = o.Reason
	}
	var out ReleaseView
	err := c.do(ctx, http.MethodPost, "/api/v1/releases", req, o, &out)
	return out, err
}

// FinishRelease records the state after an open release, found by id or
// name.
func (c *Client) FinishRelease(ctx context.Context, idOrName string, o WriteOptions) (ReleaseView, error) {
	var out ReleaseView
	err := c.do(ctx, http.MethodPost, releasePath(idOrName)+"/finish", writeFields{o.Reason}, o, &out)
	return out, err
}

// Releases lists the releases of a deployment ("" for all), newest first.
func (c *Client) Releases(ctx context.Context, deployment string) ([]release.Release, error) {
	p := "/api/v1/releases"
	if deployment != "" {
		p += "?" + url.Values{"deployment": {deployment}}.Encode()
	}
	var out ReleaseList
	err := c.do(ctx, http.MethodGet, p, nil, WriteOptions{}, &out)
	return out.Releases, err
}

// Release returns a release, found by id or name, with its timeline.
func (c *Client) Release(ctx context.Context, idOrName string) (ReleaseView, error) {
	var out ReleaseView
	err := c.do(ctx, http.MethodGet, releasePath(idOrName), nil, WriteOptions{}, &out)
	return out, err
}

func releasePath(idOrName string) string { return "/api/v1/releases/" + url.PathEscape(idOrName) }
