package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

// DefaultAdminURL is where the CLI looks for the admin API.
const DefaultAdminURL = "http://127.0.0.1:9180"

// Client is a Go client for the admin API. The zero value is not usable;
// build one with NewClient.
type Client struct {
	base  string
	token string
	// HTTP sends the requests; NewClient sets http.DefaultClient.
	HTTP *http.Client
	// Agent, when set, is sent as X-Switchback-Client; "cli" makes the
	// versions written through this client record source "cli".
	Agent string

	// raw, when set, receives every successful answer's body as sent; the
	// CLI's --json prints it.
	raw func([]byte)
}

// NewClient returns a client for the admin API at baseURL (such as
// http://127.0.0.1:9180) sending token as a bearer token when not empty.
func NewClient(baseURL, token string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin URL %q: want http://host:port or https://host:port", baseURL)
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), token: token, HTTP: http.DefaultClient}, nil
}

// APIError is an error answer from the admin API.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the API's explanation.
	Message string
	// Field is the input to blame, if one is.
	Field string
}

func (e *APIError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (field %s, HTTP %d)", e.Message, e.Field, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// WriteOptions go with every mutation.
type WriteOptions struct {
	// Reason is recorded with the new version; at most 500 characters.
	Reason string
	// IfMatch, when not 0, makes the change conditional on the deployment
	// still being at this version; otherwise the API answers 409.
	IfMatch uint64
	// Force replaces a pool that is the retained rollback target (SetPool),
	// or sends traffic past the compatibility gate (Flip, SetWeights).
	Force bool
}

// List returns every deployment's current state.
func (c *Client) List(ctx context.Context) ([]Deployment, error) {
	var out DeploymentList
	err := c.do(ctx, http.MethodGet, "/api/v1/deployments", nil, WriteOptions{}, &out)
	return out.Deployments, err
}

// Status returns one deployment's current state.
func (c *Client) Status(ctx context.Context, name string) (Deployment, error) {
	var out Deployment
	err := c.do(ctx, http.MethodGet, deploymentPath(name), nil, WriteOptions{}, &out)
	return out, err
}

// Flip sends all traffic to the pool of a two-pool deployment that has less
// of it now.
func (c *Client) Flip(ctx context.Context, name string, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodPost, deploymentPath(name)+"/flip", gatedFlipRequest{Force: o.Force, writeFields: writeFields{o.Reason}}, o)
}

// SetWeights replaces a deployment's weights; pools left out get 0.
func (c *Client) SetWeights(ctx context.Context, name string, weights map[string]float64, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodPut, deploymentPath(name)+"/weights", weightsRequest{Weights: weights, Force: o.Force, writeFields: writeFields{o.Reason}}, o)
}

// SetPool replaces an existing pool's upstreams and release.
func (c *Client) SetPool(ctx context.Context, name, pool string, p gateway.Pool, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodPut, deploymentPath(name)+"/pools/"+url.PathEscape(pool),
		poolRequest{Upstreams: p.Upstreams, Release: p.Release, Force: o.Force, writeFields: writeFields{o.Reason}}, o)
}

// SetFlag creates or changes a flag.
func (c *Client) SetFlag(ctx context.Context, name, flag string, percent float64, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodPut, deploymentPath(name)+"/flags/"+url.PathEscape(flag),
		flagRequest{&percent, writeFields{o.Reason}}, o)
}

// DeleteFlag removes a flag.
func (c *Client) DeleteFlag(ctx context.Context, name, flag string, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodDelete, deploymentPath(name)+"/flags/"+url.PathEscape(flag), writeFields{o.Reason}, o)
}

// History returns up to limit versions' metadata, newest first; limit 0
// means the API's default (50).
func (c *Client) History(ctx context.Context, name string, limit int) ([]configstore.Meta, error) {
	p := deploymentPath(name) + "/history"
	if limit != 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	var out History
	err := c.do(ctx, http.MethodGet, p, nil, WriteOptions{}, &out)
	return out.History, err
}

// Version returns one stored version of a deployment.
func (c *Client) Version(ctx context.Context, name string, version uint64) (Deployment, error) {
	var out Deployment
	err := c.do(ctx, http.MethodGet, deploymentPath(name)+"/versions/"+strconv.FormatUint(version, 10), nil, WriteOptions{}, &out)
	return out, err
}

// Diff compares two versions; from 0 means the one before to, to 0 means
// the current one.
func (c *Client) Diff(ctx context.Context, name string, from, to uint64) (DiffResult, error) {
	q := url.Values{}
	if from != 0 {
		q.Set("from", strconv.FormatUint(from, 10))
	}
	if to != 0 {
		q.Set("to", strconv.FormatUint(to, 10))
	}
	p := deploymentPath(name) + "/diff"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out DiffResult
	err := c.do(ctx, http.MethodGet, p, nil, WriteOptions{}, &out)
	return out, err
}

// Restore writes a stored version's document again, as a new version.
func (c *Client) Restore(ctx context.Context, name string, version uint64, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodPost, deploymentPath(name)+"/restore", restoreRequest{Version: version, writeFields: writeFields{o.Reason}}, o)
}

// Rollback writes the previous version's document again, as a new version.
func (c *Client) Rollback(ctx context.Context, name string, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodPost, deploymentPath(name)+"/rollback", flipRequest{writeFields{o.Reason}}, o)
}

// Guard returns what the guard of the instance serving the API sees of a
// deployment; View.Guard is false when the deployment has no guard.
func (c *Client) Guard(ctx context.Context, name string) (guard.View, error) {
	var out guard.View
	err := c.do(ctx, http.MethodGet, deploymentPath(name)+"/guard", nil, WriteOptions{}, &out)
	return out, err
}

// Health returns the store's health as /healthz reports it; a 503 is an
// *APIError.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var out Health
	err := c.do(ctx, http.MethodGet, "/healthz", nil, WriteOptions{}, &out)
	return out, err
}

// Get reads any GET endpoint of the admin API (path with its query) into
// out, for the endpoints this client has no method for; an error answer
// is an *APIError, so a 404 tells an older gateway without the endpoint.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, WriteOptions{}, out)
}

func deploymentPath(name string) string { return "/api/v1/deployments/" + url.PathEscape(name) }

func (c *Client) write(ctx context.Context, method, path string, body any, o WriteOptions) (Deployment, error) {
	var out Deployment
	err := c.do(ctx, method, path, body, o, &out)
	return out, err
}

// do sends one request and decodes a 2xx answer into out; any other answer
// is an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body any, o WriteOptions, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.Agent != "" {
		req.Header.Set(clientHeader, c.Agent)
	}
	if o.IfMatch != 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatUint(o.IfMatch, 10)))
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: read answer: %w", c.base, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiErrorFrom(resp.StatusCode, data)
	}
	if c.raw != nil {
		c.raw(data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API at %s: decode answer: %w", c.base, err)
	}
	return nil
}

func apiErrorFrom(status int, data []byte) *APIError {
	var eb errorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error != "" {
		return &APIError{Status: status, Message: eb.Error, Field: eb.Field}
	}
	// Not the admin API's JSON: a proxy in between, or the wrong address.
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{Status: status, Message: msg}
}
