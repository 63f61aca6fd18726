package token

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzBatchItem feeds arbitrary JSON to the reader of a batch entry. It
// must never panic; an entry it accepts names a device within the
// protocol's bounds, and a refused one carries an OAuth error.
func FuzzBatchItem(f *testing.F) {
	for _, s := range []string{
		`{"fccId":"ABC123","cbsdSerialNumber":"SN-1"}`,
		`{"fccId":"ABC123","cbsdSerialNumber":"SN:1/a","audience":"https://sas.example.com","scope":"a b"}`,
		`{"fccId":"","cbsdSerialNumber":"x"}`,
		`{"fccId":7}`,
		`{"fccId":"A","cbsdSerialNumber":"B","extra":1}`,
		"{\"fccId\":\"A\",\"cbsdSerialNumber\":\"\xff\"}",
		`{"fccId":"A\u0000","cbsdSerialNumber":"B"}`,
		`[]`, `null`, `"x"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		it := readItem(json.RawMessage(s))
		if it.err != nil {
			if it.err.Code == "" || it.err.Description == "" {
				t.Fatalf("refusal without code or description: %+v", it.err)
			}
			return
		}
		for _, v := range []string{it.FCCID, it.Serial} {
			if v == "" || !utf8.ValidString(v) || strings.ContainsAny(v, "\t\r\n\x00\u202e") {
				t.Fatalf("accepted %q", v)
			}
		}
		if len(it.FCCID) > MaxFCCID || len(it.Serial) > MaxSerial {
			t.Fatalf("accepted an oversized device: %q %q", it.FCCID, it.Serial)
		}
	})
}

// FuzzParseDeviceChain: a subject token is decoded within its bounds or
// refused; never a panic, never an empty chain.
func FuzzParseDeviceChain(f *testing.F) {
	f.Add("")
	f.Add("MIIB")
	f.Add(strings.Repeat("A", 100))
	f.Fuzz(func(t *testing.T, s string) {
		certs, err := ParseDeviceChain(s)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}
