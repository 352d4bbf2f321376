package registry

import (
	"math"
	"testing"
)

// TestIncidentOfInvalidLocationStored checks that the incident of a request whose
// location is present but not a point (NaN, out of range: a caller that did not
// validate GL) is stored, and keeps no location: JSON has no NaN, and until 6
// December 2026 such an incident failed to encode, and with it the other incidents
// written in the same batch.
func TestIncidentOfInvalidLocationStored(t *testing.T) {
	f := newFixture(t)
	nan := f.goodT1()
	nan.Location = GeoPoint{Lat: math.NaN(), Lon: math.NaN(), Present: true}
	if res := f.reg.Check(nan); !res.Decline || res.Reason != ReasonIdentityMissing {
		t.Fatalf("NaN location: %+v, want identity-missing", res)
	}
	far := f.goodT1()
	far.Location = GeoPoint{Lat: 91, Lon: 0, Present: true}
	if res := f.reg.Check(far); !res.Decline || res.Reason != ReasonIdentityMissing {
		t.Fatalf("latitude 91: %+v, want identity-missing", res)
	}
	incs, err := f.reg.Incidents(IncidentFilter{TerminalID: "T0000001"})
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 2 {
		t.Fatalf("%d incidents stored, want 2: %+v", len(incs), incs)
	}
	for _, inc := range incs {
		if inc.Device.Location != nil {
			t.Errorf("incident %s keeps the invalid location %+v", inc.ID, *inc.Device.Location)
		}
	}
}
