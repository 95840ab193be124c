package instance

// State is the lifecycle state of an instance, as the Universe contract
// spells it on the wire.
type State string

// The states of the contract.
const (
	StateCreating State = "CREATING" // being deployed: port allocated, files copied, process starting
	StateOnline   State = "ONLINE"   // its process runs
	StateOffline  State = "OFFLINE"  // its process died or could not start; see its reason
	StateStopped  State = "STOPPED"  // stopped on purpose
)

// States lists every state, in lifecycle order.
var States = []State{StateCreating, StateOnline, StateOffline, StateStopped}

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}
