package netns

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// Timeline is when an execution was triggered, started and reached
// health at its target, as the control plane recorded it. `drplane
// history --json` shows neither the trigger nor which steps are health
// gates, so it is read through the API. Every process of a deployment
// shares the machine's clock, so these instants compare with the test's
// own time.Now().
type Timeline struct {
	// Triggered is the command's time, or the first missed probe of an
	// automatic failover: RTO and RPO are measured from it.
	Triggered time.Time
	// Started is when the leader began running the plan.
	Started time.Time
	// Healthy is when the last health gate passed; zero when none did.
	Healthy time.Time
}

// Timeline reads execution id's timeline, trying the servers the ops
// host reaches first.
func (d *Deployment) Timeline(ctx context.Context, id string) (Timeline, error) {
	var errs []error
	for _, n := range d.serversByReach() {
		client, err := d.controlPlane(n)
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var resp *pb.GetExecutionResponse
			resp, err = client.GetExecution(actx, &pb.GetExecutionRequest{Id: id})
			cancel()
			if err == nil {
				return timelineOf(resp.GetExecution()), nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", n.ID, err))
		if ctx.Err() != nil {
			break
		}
	}
	return Timeline{}, fmt.Errorf("timeline of execution %s: %w", id, errors.Join(errs...))
}

// timelineOf takes the end of the last successful health gate, as the
// control plane's RTO does.
func timelineOf(ex *pb.Execution) Timeline {
	var tl Timeline
	// A nil timestamp's AsTime is 1970, not the zero time.
	if ex.GetTriggeredAt() != nil {
		tl.Triggered = ex.GetTriggeredAt().AsTime()
	}
	if ex.GetStartedAt() != nil {
		tl.Started = ex.GetStartedAt().AsTime()
	}
	for _, st := range ex.GetSteps() {
		if !st.GetStep().GetHealthGate() || st.GetState() != pb.StepState_STEP_STATE_SUCCEEDED || st.GetEndedAt() == nil {
			continue
		}
		if end := st.GetEndedAt().AsTime(); end.After(tl.Healthy) {
			tl.Healthy = end
		}
	}
	return tl
}
