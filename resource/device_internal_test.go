package resource

import (
	"encoding/json"
	"testing"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/oauth"
)

// TestCBSDSubjectAsTheSTSWritesIt: the resource's own escaping of a
// CBSD's sub is devicecert's, byte for byte.
func TestCBSDSubjectAsTheSTSWritesIt(t *testing.T) {
	for _, p := range [][2]string{{"ABC123", "SN-1"}, {"A:B", "C"}, {"A", "B:C"}, {"a%3Ab", "x/y"}, {"Ünï", "sp ace\x7f"}, {"2АXYZ", "1"}} {
		if got, want := cbsdSubject(p[0], p[1]), devicecert.CBSDSubject(p[0], p[1]); got != want {
			t.Errorf("%q: %q, devicecert %q", p, got, want)
		}
	}
}

// TestDeviceOfRefusesForgedDevice: a token whose device claim names a
// CBSD other than its sub (a rule that wrote a device claim into a
// client's token) is not a device token.
func TestDeviceOfRefusesForgedDevice(t *testing.T) {
	claims := func(sub string, dev map[string]any) *Claims {
		raw, _ := json.Marshal(map[string]any{"sub": sub, "device": dev})
		return &Claims{Subject: sub, Confirmation: oauth.Confirmation{X5tS256: "x"}, raw: raw}
	}
	ok := map[string]any{"fcc_id": "A:B", "serial": "1", "role": "cbsd", "profile": "cbrs", "subject": "cbsd:A%3AB:1"}
	if d, err := DeviceOf(claims("cbsd:A%3AB:1", ok)); err != nil || d.FCCID != "A:B" {
		t.Fatalf("a CBSD's token: %v %v", d, err)
	}
	for name, c := range map[string]*Claims{
		"a client's sub":         claims("client-1", map[string]any{"fcc_id": "A:B", "serial": "1", "role": "cbsd", "subject": "client-1"}),
		"another device's sub":   claims("cbsd:A%3AB:2", map[string]any{"fcc_id": "A:B", "serial": "1", "role": "cbsd", "subject": "cbsd:A%3AB:2"}),
		"role cbsd, no fcc id":   claims("x", map[string]any{"role": "cbsd", "subject": "x"}),
		"unescaped sub":          claims("cbsd:A:B:1", map[string]any{"fcc_id": "A:B", "serial": "1", "role": "cbsd", "subject": "cbsd:A:B:1"}),
		"subject other than sub": claims("cbsd:A%3AB:1", map[string]any{"fcc_id": "A:B", "serial": "1", "role": "cbsd", "subject": "y"}),
	} {
		if d, err := DeviceOf(c); err != ErrNotDevice {
			t.Errorf("%s: %v %v, want ErrNotDevice", name, d, err)
		}
	}
	// A generic X.509 device: no FCC ID, its sub is its profile's.
	gen := map[string]any{"role": "device", "profile": "fleet", "subject": "sensor-7"}
	if _, err := DeviceOf(claims("sensor-7", gen)); err != nil {
		t.Errorf("a generic device's token: %v", err)
	}
}
