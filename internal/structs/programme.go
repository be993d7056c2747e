package structs

import (
	"time"

	"github.com/drplane/drplane/internal/kpi"
)

// ScheduleState is what the replicated state keeps of one schedule block,
// so that a new leader neither runs a slot again nor forgets a deferral.
type ScheduleState struct {
	// Since is when a leader first saw the block: its first slot comes
	// after it.
	Since time.Time `json:"since"`
	// LastSlot is the slot of the newest execution the schedule started,
	// LastExecution its id.
	LastSlot      time.Time `json:"last_slot,omitempty"`
	LastExecution string    `json:"last_execution,omitempty"`
	// Deferred, when set, is a due slot moved out of trading hours.
	Deferred *ScheduleDeferral `json:"deferred,omitempty"`
	// Log is what happened to the slots, newest last, bounded.
	Log []ScheduleEvent `json:"log,omitempty"`
}

// ScheduleDeferral is a slot that fell inside trading hours, moved to To.
// With NoSlot no free time was found within the search horizon, and the
// slot waits for the next look.
type ScheduleDeferral struct {
	Slot   time.Time `json:"slot"`
	To     time.Time `json:"to,omitempty"`
	Market string    `json:"market,omitempty"`
	NoSlot bool      `json:"no_slot,omitempty"`
}

// ScheduleEvent is one line of a schedule's log.
type ScheduleEvent struct {
	At     time.Time `json:"at"`
	Slot   time.Time `json:"slot"`
	Detail string    `json:"detail"`
}

// Schedule operations.
const (
	// ScheduleSeen records the first time a leader saw the block.
	ScheduleSeen = "seen"
	// ScheduleDefer records a slot moved out of trading hours.
	ScheduleDefer = "defer"
)

// ScheduleRequest records what became of a schedule's slot.
type ScheduleRequest struct {
	WriteRequest
	Name string `json:"name"`
	Op   string `json:"op"`
	// At is the instant on the programme's clock (the leader's wall
	// clock) the operation was decided at: the first sight's Since.
	At       time.Time         `json:"at"`
	Deferral *ScheduleDeferral `json:"deferral,omitempty"`
}

// AvailabilityRequest records what the leader saw of the active site's
// services, one state per minute; a minute already recorded down stays
// down.
type AvailabilityRequest struct {
	WriteRequest
	Minutes []MinuteObservation `json:"minutes"`
}

// MinuteObservation is one minute's state.
type MinuteObservation struct {
	Minute time.Time       `json:"minute"`
	State  kpi.MinuteState `json:"state"`
}
