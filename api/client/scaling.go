package client

import (
	"context"

	"github.com/universe-orchestrator/universe/api"
)

// Drain takes an instance out of the joinable set; it is stopped once
// empty, or after deadlineSeconds (0: none).
func (c *Client) Drain(ctx context.Context, id string, deadlineSeconds int) (api.InstanceInfo, error) {
	var out api.InstanceInfo
	return out, c.do(ctx, "POST", "/api/instances/"+seg(id)+"/drain", nil, api.DrainRequest{DeadlineSeconds: deadlineSeconds}, &out)
}

// Scaling returns a configuration's scaling: desired, actual, joinable
// and its decisions, newest first.
func (c *Client) Scaling(ctx context.Context, configuration string) (api.ScalingStatus, error) {
	var out api.ScalingStatus
	return out, c.do(ctx, "GET", "/api/configurations/"+seg(configuration)+"/scaling", nil, nil, &out)
}
