package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/universe-orchestrator/universe/api"
)

// EventFilter narrows Events; empty fields match all.
type EventFilter struct {
	Since      uint64
	Type       string
	InstanceID string
	Limit      int
}

// Events lists the event log (GET /api/events), oldest first.
func (c *Client) Events(ctx context.Context, f EventFilter) ([]api.Event, error) {
	q := url.Values{}
	if f.Since > 0 {
		q.Set("since", strconv.FormatUint(f.Since, 10))
	}
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	if f.InstanceID != "" {
		q.Set("instanceId", f.InstanceID)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []api.Event
	return out, c.do(ctx, "GET", "/api/events", q, nil, &out)
}

// WebhookCreate is what POST /api/webhooks takes.
type WebhookCreate struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Format string   `json:"format,omitempty"`
}

// CreateWebhook makes a webhook; its secret is in the answer, once.
func (c *Client) CreateWebhook(ctx context.Context, w WebhookCreate) (api.Webhook, error) {
	var out api.Webhook
	return out, c.do(ctx, "POST", "/api/webhooks", nil, w, &out)
}

// Webhooks lists the webhooks (without secrets).
func (c *Client) Webhooks(ctx context.Context) ([]api.Webhook, error) {
	var out []api.Webhook
	return out, c.do(ctx, "GET", "/api/webhooks", nil, nil, &out)
}

// DeleteWebhook deletes a webhook.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/webhooks/"+seg(id), nil, nil, nil)
}

// WebhookDeliveries lists a webhook's latest deliveries, newest first.
func (c *Client) WebhookDeliveries(ctx context.Context, id string) ([]api.Delivery, error) {
	var out []api.Delivery
	return out, c.do(ctx, "GET", "/api/webhooks/"+seg(id)+"/deliveries", nil, nil, &out)
}
