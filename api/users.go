package api

// User is a user as the API shows it: never a hash or a secret.
type User struct {
	Name      string `json:"name"`
	Admin     bool   `json:"admin"`
	Disabled  bool   `json:"disabled"`
	TOTP      bool   `json:"totp"`
	CreatedAt int64  `json:"createdAt"`
}

// UserCreate is the body of POST /api/users.
type UserCreate struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Admin    bool   `json:"admin"`
}

// UserPatch is the body of PATCH /api/users/{name}; nil fields are kept.
type UserPatch struct {
	Disabled *bool   `json:"disabled,omitempty"`
	Password *string `json:"password,omitempty"`
}

// Grant is a member's permissions on one instance or one configuration
// (its instances, present and future).
type Grant struct {
	ID            string   `json:"id"`
	User          string   `json:"user"`
	InstanceID    string   `json:"instanceId,omitempty"`
	Configuration string   `json:"configuration,omitempty"`
	Permissions   []string `json:"permissions"`
	By            string   `json:"by,omitempty"`
	CreatedAt     int64    `json:"createdAt"`
}

// GrantCreate is the body of POST /api/users/{name}/grants.
type GrantCreate struct {
	InstanceID    string   `json:"instanceId,omitempty"`
	Configuration string   `json:"configuration,omitempty"`
	Permissions   []string `json:"permissions"`
}

// Me is GET /api/me: the caller's user, grants and key.
type Me struct {
	Name        string   `json:"name,omitempty"`
	Admin       bool     `json:"admin"`
	TOTP        bool     `json:"totp"`
	Grants      []Grant  `json:"grants"`
	Scope       string   `json:"scope"`
	Key         string   `json:"key"`
	Permissions []string `json:"permissions,omitempty"`
}

// UserKeyCreate is the body of POST /api/me/keys.
type UserKeyCreate struct {
	Label       string   `json:"label"`
	Permissions []string `json:"permissions,omitempty"`
	ExpiresIn   string   `json:"expiresIn,omitempty"`
}

// UserKeyCreated answers POST /api/me/keys: the token, this once.
type UserKeyCreated struct {
	ID          string   `json:"id"`
	Label       string   `json:"label"`
	Scope       string   `json:"scope"`
	Permissions []string `json:"permissions"`
	Token       string   `json:"token"`
}

// Login is the body of POST /api/login.
type Login struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Code     string `json:"code,omitempty"`
}
