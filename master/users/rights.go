package users

// Rights are what a principal may do: everything (an admin, an ALL key),
// or a member's grants, indexed so that a check costs two map lookups
// whatever the number of grants (BenchmarkAllowed: 1,000 grants).
type Rights struct {
	Admin bool
	// byInstance and byConfig: the permissions granted on an instance, on
	// a configuration.
	byInstance map[string]map[string]bool
	byConfig   map[string]map[string]bool
	// narrow, when set, is the only permissions a key of the user may use
	// (a key narrowed at its making): never more than the user holds.
	narrow map[string]bool
	all    bool // a narrowed admin's key: its narrow set on everything
}

// AdminRights may do everything.
var AdminRights = &Rights{Admin: true}

// NewRights indexes a member's grants; narrow (nil: none) limits them.
func NewRights(grants []Grant, narrow []string) *Rights {
	r := &Rights{byInstance: map[string]map[string]bool{}, byConfig: map[string]map[string]bool{}}
	add := func(m map[string]map[string]bool, k string, perms []string) {
		set := m[k]
		if set == nil {
			set = map[string]bool{}
			m[k] = set
		}
		for _, p := range perms {
			set[p] = true
		}
	}
	for _, g := range grants {
		if g.InstanceID != "" {
			add(r.byInstance, g.InstanceID, g.Permissions)
		}
		if g.Configuration != "" {
			add(r.byConfig, g.Configuration, g.Permissions)
		}
	}
	if narrow != nil {
		r.narrow = map[string]bool{}
		for _, p := range narrow {
			r.narrow[p] = true
		}
	}
	return r
}

// Narrowed is r limited to perms (a user's key made with a permission
// list); an admin's key narrowed is no admin any more.
func (r *Rights) Narrowed(perms []string) *Rights {
	if perms == nil {
		return r
	}
	n := &Rights{byInstance: r.byInstance, byConfig: r.byConfig, narrow: map[string]bool{}}
	if r.Admin {
		// An admin's narrowed key holds its permissions everywhere.
		n.byInstance, n.byConfig = nil, nil
		n.all = true
	}
	for _, p := range perms {
		if r.narrow == nil || r.narrow[p] {
			n.narrow[p] = true
		}
	}
	return n
}

// Allowed says whether perm is held on the instance id of configuration
// config (either may be empty: a configuration alone, for config.*).
func (r *Rights) Allowed(perm, id, config string) bool {
	if r.Admin {
		return true
	}
	if r.narrow != nil && !r.narrow[perm] {
		return false
	}
	if r.all {
		return true
	}
	if id != "" && r.byInstance[id][perm] {
		return true
	}
	return config != "" && r.byConfig[config][perm]
}

// Anywhere says whether perm is held on anything at all (what a list
// shows, the rest filtered out).
func (r *Rights) Anywhere(perm string) bool {
	if r.Admin || r.all && (r.narrow == nil || r.narrow[perm]) {
		return true
	}
	if r.narrow != nil && !r.narrow[perm] {
		return false
	}
	for _, set := range r.byInstance {
		if set[perm] {
			return true
		}
	}
	for _, set := range r.byConfig {
		if set[perm] {
			return true
		}
	}
	return false
}

// Holds says whether r holds every permission of perms on the instance id
// or configuration config: what it may grant there (no one grants more
// than they hold).
func (r *Rights) Holds(perms []string, id, config string) bool {
	for _, p := range perms {
		if !r.Allowed(p, id, config) {
			return false
		}
	}
	return true
}
