package structs

import (
	"fmt"
	"strconv"
	"strings"
)

// ArgRestartInPlace marks a start step by which the leader restarts, in
// place, a service an agent fenced because its lease lapsed (see
// FenceReasonLeaseLapsed); the agent checks the conditions again itself.
const ArgRestartInPlace = "restart_in_place"

// fenceLeaseLapsedPrefix starts the fence reason of a service an agent
// stopped because its lease lapsed.
const fenceLeaseLapsedPrefix = "lease expired in epoch "

// FenceReasonLeaseLapsed is the fence reason an agent reports for a
// service it stopped because its lease lapsed while it held epoch: the
// leader restarts such a service in place when it renews the lease in the
// same epoch with the agent's site active (and only then).
func FenceReasonLeaseLapsed(epoch uint64) string {
	return fmt.Sprintf("%s%d: no renewal from a leader within lease_ttl", fenceLeaseLapsedPrefix, epoch)
}

// LeaseLapsedEpoch returns the epoch in a FenceReasonLeaseLapsed reason,
// and false for any other reason.
func LeaseLapsedEpoch(reason string) (uint64, bool) {
	rest, ok := strings.CutPrefix(reason, fenceLeaseLapsedPrefix)
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, false
	}
	e, err := strconv.ParseUint(num, 10, 64)
	return e, err == nil
}
