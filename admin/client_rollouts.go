package admin

import (
	"context"
	"net/http"

	"github.com/a8e2c47e/switchback/rollout"
)

// StartRollout starts a rollout of a deployment's pool or flag; req.Reason
// defaults to o.Reason. o.IfMatch makes it conditional on the deployment's
// version.
func (c *Client) StartRollout(ctx context.Context, name string, req rollout.Request, o WriteOptions) (RolloutStatus, error) {
	if req.Reason == "" {
		req.Reason = o.Reason
	}
	var out RolloutStatus
	body := startRolloutRequest{Target: req.Target, Steps: req.Steps, Bake: req.Bake, writeFields: writeFields{req.Reason}}
	err := c.do(ctx, http.MethodPost, deploymentPath(name)+"/rollouts", body, o, &out)
	return out, err
}

// Rollout returns a deployment's current or last rollout.
func (c *Client) Rollout(ctx context.Context, name string) (RolloutStatus, error) {
	var out RolloutStatus
	err := c.do(ctx, http.MethodGet, deploymentPath(name)+"/rollouts", nil, WriteOptions{}, &out)
	return out, err
}

// PauseRollout holds a running rollout at its step.
func (c *Client) PauseRollout(ctx context.Context, name string, o WriteOptions) (RolloutStatus, error) {
	return c.rolloutAction(ctx, name, rolloutPause, o)
}

// ResumeRollout continues a paused rollout; its step bakes again in full.
func (c *Client) ResumeRollout(ctx context.Context, name string, o WriteOptions) (RolloutStatus, error) {
	return c.rolloutAction(ctx, name, rolloutResume, o)
}

// AbortRollout stops a rollout and puts its target back where it was.
func (c *Client) AbortRollout(ctx context.Context, name string, o WriteOptions) (RolloutStatus, error) {
	return c.rolloutAction(ctx, name, rolloutAbort, o)
}

func (c *Client) rolloutAction(ctx context.Context, name, action string, o WriteOptions) (RolloutStatus, error) {
	var out RolloutStatus
	err := c.do(ctx, http.MethodPost, deploymentPath(name)+"/rollouts/"+action, writeFields{o.Reason}, o, &out)
	return out, err
}
