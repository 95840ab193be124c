package client

import (
	"context"
	"net/http"
	"net/http/cookiejar"

	"github.com/universe-orchestrator/universe/api"
)

// Users lists the users (admins only).
func (c *Client) Users(ctx context.Context) ([]api.User, error) {
	var out []api.User
	return out, c.do(ctx, "GET", "/api/users", nil, nil, &out)
}

// User returns one user.
func (c *Client) User(ctx context.Context, name string) (api.User, error) {
	var out api.User
	return out, c.do(ctx, "GET", "/api/users/"+seg(name), nil, nil, &out)
}

// CreateUser creates a user.
func (c *Client) CreateUser(ctx context.Context, u api.UserCreate) (api.User, error) {
	var out api.User
	return out, c.do(ctx, "POST", "/api/users", nil, u, &out)
}

// PatchUser disables or enables a user, or sets their password.
func (c *Client) PatchUser(ctx context.Context, name string, p api.UserPatch) (api.User, error) {
	var out api.User
	return out, c.do(ctx, "PATCH", "/api/users/"+seg(name), nil, p, &out)
}

// DeleteUser deletes a user, their grants and keys.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/api/users/"+seg(name), nil, nil, nil)
}

// Grants lists a user's grants.
func (c *Client) Grants(ctx context.Context, user string) ([]api.Grant, error) {
	var out []api.Grant
	return out, c.do(ctx, "GET", "/api/users/"+seg(user)+"/grants", nil, nil, &out)
}

// CreateGrant grants a member permissions on an instance or a
// configuration.
func (c *Client) CreateGrant(ctx context.Context, user string, g api.GrantCreate) (api.Grant, error) {
	var out api.Grant
	return out, c.do(ctx, "POST", "/api/users/"+seg(user)+"/grants", nil, g, &out)
}

// DeleteGrant revokes a grant.
func (c *Client) DeleteGrant(ctx context.Context, user, id string) error {
	return c.do(ctx, "DELETE", "/api/users/"+seg(user)+"/grants/"+seg(id), nil, nil, nil)
}

// Me returns the caller's user, grants and key.
func (c *Client) Me(ctx context.Context) (api.Me, error) {
	var out api.Me
	return out, c.do(ctx, "GET", "/api/me", nil, nil, &out)
}

// CreateMyKey makes a key of the caller's user (its rights or fewer).
func (c *Client) CreateMyKey(ctx context.Context, k api.UserKeyCreate) (api.UserKeyCreated, error) {
	var out api.UserKeyCreated
	return out, c.do(ctx, "POST", "/api/me/keys", nil, k, &out)
}

// Login signs in as a user (name, password and, with two factors, a
// code) and makes a key of theirs labelled k.Label, the way `universe
// login` does: the sign-in's session makes the key and is then ended. The
// client's own token is not used.
func (c *Client) Login(ctx context.Context, l api.Login, k api.UserKeyCreate) (api.UserKeyCreated, error) {
	jar, _ := cookiejar.New(nil)
	hc := *c.http
	hc.Jar = jar
	s := &Client{base: c.base, http: &hc, ua: c.ua}
	var out api.UserKeyCreated
	if err := s.do(ctx, "POST", "/api/login", nil, l, nil); err != nil {
		return out, err
	}
	err := s.do(ctx, "POST", "/api/me/keys", nil, k, &out)
	// The session is done with either way.
	if resp, lerr := s.send(ctx, http.MethodPost, "/ui/logout", nil, nil); lerr == nil {
		_ = resp.Body.Close()
	}
	return out, err
}
