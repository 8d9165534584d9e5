package cachelayer

// Tier says where Lookup found an entry.
type Tier uint8

// The tiers, as Lookup reports them.
const (
	TierNone Tier = iota // not found, or not valid
	TierL1
	TierL2
)

// String returns "none", "l1" or "l2", as metrics label them.
func (t Tier) String() string {
	switch t {
	case TierL1:
		return "l1"
	case TierL2:
		return "l2"
	default:
		return "none"
	}
}
