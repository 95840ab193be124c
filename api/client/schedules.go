package client

import (
	"context"
	"net/url"

	"github.com/universe-orchestrator/universe/api"
)

// CreateSchedule creates a schedule (POST /api/schedules).
func (c *Client) CreateSchedule(ctx context.Context, s api.Schedule) (api.Schedule, error) {
	var out api.Schedule
	return out, c.do(ctx, "POST", "/api/schedules", nil, s, &out)
}

// Schedules lists schedules, of one instance or configuration when given.
func (c *Client) Schedules(ctx context.Context, instanceID, configuration string) ([]api.Schedule, error) {
	q := url.Values{}
	if instanceID != "" {
		q.Set("instanceId", instanceID)
	}
	if configuration != "" {
		q.Set("configuration", configuration)
	}
	var out []api.Schedule
	return out, c.do(ctx, "GET", "/api/schedules", q, nil, &out)
}

// Schedule returns one schedule.
func (c *Client) Schedule(ctx context.Context, id string) (api.Schedule, error) {
	var out api.Schedule
	return out, c.do(ctx, "GET", "/api/schedules/"+seg(id), nil, nil, &out)
}

// PutSchedule replaces a schedule's fields.
func (c *Client) PutSchedule(ctx context.Context, id string, s api.Schedule) (api.Schedule, error) {
	var out api.Schedule
	return out, c.do(ctx, "PUT", "/api/schedules/"+seg(id), nil, s, &out)
}

// DeleteSchedule deletes a schedule and its runs.
func (c *Client) DeleteSchedule(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/schedules/"+seg(id), nil, nil, nil)
}

// RunSchedule runs a schedule now.
func (c *Client) RunSchedule(ctx context.Context, id string) (api.ScheduleRun, error) {
	var out api.ScheduleRun
	return out, c.do(ctx, "POST", "/api/schedules/"+seg(id)+"/run", nil, nil, &out)
}

// ScheduleRuns lists a schedule's runs, newest first.
func (c *Client) ScheduleRuns(ctx context.Context, id string) ([]api.ScheduleRun, error) {
	var out []api.ScheduleRun
	return out, c.do(ctx, "GET", "/api/schedules/"+seg(id)+"/runs", nil, nil, &out)
}
