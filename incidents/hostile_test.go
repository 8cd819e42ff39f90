package incidents

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/cairnhq/cairn/capture"
)

// TestIncidentEncodesOddSamples: an incident whose samples carry numbers
// encoding/json refuses (issue 12.2: "temperature": 1e999 read as +Inf)
// still encodes, clones and renders; before, clone panicked with "BUG:
// incident does not encode" and the process exited.
func TestIncidentEncodesOddSamples(t *testing.T) {
	inf := math.Inf(1)
	rec := capture.Record{GatewayRequestID: "req_odd", Route: "r", Params: capture.Params{Temperature: &inf}, LatencyMS: math.NaN()}
	inc := &Incident{ID: "inc_odd", Status: StatusOpen, Samples: Samples{Before: []capture.Record{rec}, During: []capture.Record{rec}}}
	if err := inc.seal(); err != nil {
		t.Fatal(err)
	}
	c := inc.clone()
	if len(c.Samples.During) != 1 || c.Samples.During[0].GatewayRequestID != "req_odd" {
		t.Fatalf("clone lost the sample: %+v", c.Samples)
	}
	if _, err := json.Marshal(inc); err != nil {
		t.Fatalf("encode: %v", err)
	}
	if err := c.Verify(); err != nil {
		t.Fatalf("Verify after clone: %v", err)
	}
}
