package ruleset

import (
	"encoding/json"
	"strings"
	"testing"
)

// A card number a terminal typed into a free-text field the rules read
// (device.id from DE 48 DI, device.findings) is masked in the values explain,
// review cases and failing rule tests show: never the clear PAN or track data.
func TestTraceValuesMaskCardNumbers(t *testing.T) {
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `
rules:
  - {id: odd-device, condition: 'device.id startsWith "4" || "x" in device.findings', action: review}
`}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const pan = "4761739001010119" // Luhn-valid test card
	in := purchase(5000)
	in.Device.ID = pan + "=25121010000000000"
	in.Device.Findings = []string{"root", "%B" + pan + "^DOE/JOHN^2512101"}
	_, traces := rs.Trace(in, nil, nil)
	b, err := json.Marshal(traces)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, v := range traces[0].Values {
		text.WriteString(v.Text() + " ")
	}
	for _, out := range []string{string(b), text.String()} {
		if strings.Contains(out, pan) || strings.Contains(out, "2512101") || strings.Contains(out, "DOE") {
			t.Errorf("card data in clear: %s", out)
		}
		if !strings.Contains(out, "476173******0119") {
			t.Errorf("masked PAN missing: %s", out)
		}
	}
	if in.Device.ID != pan+"=25121010000000000" {
		t.Errorf("the input was changed: %q", in.Device.ID)
	}
}
