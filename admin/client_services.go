package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/a8e2c47e/switchback/configstore"
)

// GetService returns a service's current configuration, or version v when
// v is not 0.
func (c *Client) GetService(ctx context.Context, name string, v uint64) (Service, error) {
	path := "/api/v1/services/" + url.PathEscape(name)
	if v != 0 {
		path += "/versions/" + strconv.FormatUint(v, 10)
	}
	var out Service
	err := c.do(ctx, http.MethodGet, path, nil, WriteOptions{}, &out)
	return out, err
}

// PutService replaces a service's configuration with cfg (a JSON object).
func (c *Client) PutService(ctx context.Context, name string, cfg json.RawMessage, o WriteOptions) (Service, error) {
	var out Service
	err := c.do(ctx, http.MethodPut, "/api/v1/services/"+url.PathEscape(name),
		servicePutRequest{Config: cfg, writeFields: writeFields{Reason: o.Reason}}, o, &out)
	return out, err
}

// PatchService applies an RFC 7396 merge patch to a service's
// configuration.
func (c *Client) PatchService(ctx context.Context, name string, patch json.RawMessage, o WriteOptions) (Service, error) {
	var out Service
	err := c.do(ctx, http.MethodPatch, "/api/v1/services/"+url.PathEscape(name),
		servicePatchRequest{Patch: patch, writeFields: writeFields{Reason: o.Reason}}, o, &out)
	return out, err
}

// ServiceHistory lists a service's versions, newest first.
func (c *Client) ServiceHistory(ctx context.Context, name string, limit int) ([]configstore.Meta, error) {
	path := "/api/v1/services/" + url.PathEscape(name) + "/history"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out History
	err := c.do(ctx, http.MethodGet, path, nil, WriteOptions{}, &out)
	return out.History, err
}

// ServiceDiff compares two versions of a service (0: the defaults).
func (c *Client) ServiceDiff(ctx context.Context, name string, from, to uint64) (DiffResult, error) {
	q := url.Values{}
	if from != 0 {
		q.Set("from", strconv.FormatUint(from, 10))
	}
	if to != 0 {
		q.Set("to", strconv.FormatUint(to, 10))
	}
	var out DiffResult
	err := c.do(ctx, http.MethodGet, "/api/v1/services/"+url.PathEscape(name)+"/diff?"+q.Encode(), nil, WriteOptions{}, &out)
	return out, err
}

// RestoreService makes version v of a service current again.
func (c *Client) RestoreService(ctx context.Context, name string, v uint64, o WriteOptions) (Service, error) {
	var out Service
	err := c.do(ctx, http.MethodPost, "/api/v1/services/"+url.PathEscape(name)+"/restore",
		restoreRequest{Version: v, writeFields: writeFields{Reason: o.Reason}}, o, &out)
	return out, err
}

// RollbackService undoes a service's last change.
func (c *Client) RollbackService(ctx context.Context, name string, o WriteOptions) (Service, error) {
	var out Service
	err := c.do(ctx, http.MethodPost, "/api/v1/services/"+url.PathEscape(name)+"/rollback",
		flipRequest{writeFields{Reason: o.Reason}}, o, &out)
	return out, err
}

// ApplyChangeSet applies changes across services and deployments in one
// transaction.
func (c *Client) ApplyChangeSet(ctx context.Context, changes []configstore.ChangeSpec, o WriteOptions) (configstore.ChangeSet, error) {
	var out configstore.ChangeSet
	err := c.do(ctx, http.MethodPost, "/api/v1/changesets",
		changeSetRequest{Changes: changes, writeFields: writeFields{Reason: o.Reason}}, o, &out)
	return out, err
}

// ChangeSets lists change sets, newest first.
func (c *Client) ChangeSets(ctx context.Context, limit int) ([]configstore.ChangeSet, error) {
	path := "/api/v1/changesets"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out ChangeSetList
	err := c.do(ctx, http.MethodGet, path, nil, WriteOptions{}, &out)
	return out.ChangeSets, err
}

// ChangeSet returns one change set.
func (c *Client) ChangeSet(ctx context.Context, id string) (configstore.ChangeSet, error) {
	var out configstore.ChangeSet
	err := c.do(ctx, http.MethodGet, "/api/v1/changesets/"+url.PathEscape(id), nil, WriteOptions{}, &out)
	return out, err
}

// RevertChangeSet puts every target of a change set back, in one
// transaction; force overwrites later changes.
func (c *Client) RevertChangeSet(ctx context.Context, id string, force bool, o WriteOptions) (configstore.ChangeSet, error) {
	var out configstore.ChangeSet
	err := c.do(ctx, http.MethodPost, "/api/v1/changesets/"+url.PathEscape(id)+"/revert",
		revertRequest{Force: force, writeFields: writeFields{Reason: o.Reason}}, o, &out)
	return out, err
}

// StartGray gives percent of a service's instances its configuration with
// patch applied.
func (c *Client) StartGray(ctx context.Context, name string, patch json.RawMessage, percent float64, o WriteOptions) (Service, error) {
	var out Service
	err := c.do(ctx, http.MethodPost, "/api/v1/services/"+url.PathEscape(name)+"/gray",
		grayRequest{Patch: patch, Percent: &percent, writeFields: writeFields{Reason: o.Reason}}, o, &out)
	return out, err
}

// EndGray promotes (promote true) or abandons a service's gray release.
func (c *Client) EndGray(ctx context.Context, name string, promote bool, o WriteOptions) (Service, error) {
	verb := "abandon"
	if promote {
		verb = "promote"
	}
	var out Service
	err := c.do(ctx, http.MethodPost, "/api/v1/services/"+url.PathEscape(name)+"/gray/"+verb,
		flipRequest{writeFields{Reason: o.Reason}}, o, &out)
	return out, err
}
