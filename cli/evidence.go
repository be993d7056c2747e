package cli

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"

	pb "github.com/drplane/drplane/proto/drplane/v1"
)

// runVerifyEvidence prints the evidence chain's state and fails when it
// is broken.
func runVerifyEvidence(ctx context.Context, f *Factory) error {
	var resp *pb.VerifyEvidenceResponse
	if err := callOperator(ctx, f, func(ctx context.Context, c pb.OperatorClient) (err error) {
		resp, err = c.VerifyEvidence(ctx, &pb.VerifyEvidenceRequest{})
		return err
	}); err != nil {
		return err
	}
	out := f.IO.Out
	if len(resp.GetProblems()) == 0 {
		fmt.Fprintf(out, "evidence chain intact: %d finished executions sealed; head %s\n", resp.GetLinks(), resp.GetHeadHash())
		return nil
	}
	fmt.Fprintf(out, "evidence chain BROKEN (%d links; head %s):\n", resp.GetLinks(), resp.GetHeadHash())
	for _, p := range resp.GetProblems() {
		fmt.Fprintf(out, "  - %s\n", p)
	}
	return &ExitError{Code: 1}
}

// JUnit XML, as CI dashboards read it: a suite per execution, a case per
// step.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Name    string       `xml:"name,attr"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      float64     `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

// junitOf is the JUnit form of the executions.
func junitOf(execs []*pb.Execution) junitSuites {
	out := junitSuites{Name: "drplane"}
	for _, ex := range execs {
		s := junitSuite{Name: ex.GetKind() + " " + ex.GetId() + " (" + route(ex) + ")", Timestamp: ex.GetStartedAt().AsTime().UTC().Format("2006-01-02T15:04:05")}
		if ex.GetFinishedAt() != nil && ex.GetStartedAt() != nil {
			s.Time = ex.GetFinishedAt().AsTime().Sub(ex.GetStartedAt().AsTime()).Seconds()
		}
		for _, st := range ex.GetSteps() {
			c := junitCase{Name: st.GetStep().GetId(), Classname: ex.GetKind() + "." + ex.GetId(), SystemOut: st.GetMessage()}
			if st.GetStartedAt() != nil && st.GetEndedAt() != nil {
				c.Time = st.GetEndedAt().AsTime().Sub(st.GetStartedAt().AsTime()).Seconds()
			}
			switch stepState(st) {
			case "failed":
				c.Failure = &junitFailure{Message: oneLine(st.GetMessage()), Text: st.GetMessage()}
				s.Failures++
			case "skipped", "cancelled", "pending":
				c.Skipped = &junitSkipped{Message: stepState(st)}
				s.Skipped++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(s.Cases)
		out.Suites = append(out.Suites, s)
	}
	return out
}

// writeJUnit writes the executions as JUnit XML to path.
func writeJUnit(path string, execs []*pb.Execution) error {
	b, err := xml.MarshalIndent(junitOf(execs), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644); err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	return nil
}
