package devicecert_test

import (
	"bytes"
	"testing"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
)

// FuzzParseOtherNames feeds the SubjectAltName parser arbitrary bytes:
// it must never panic, and what it returns must be made of the input.
// Seeds: well-formed CBRS SANs, with duplicates and odd tags, and
// truncated ones (also under testdata/fuzz/FuzzParseOtherNames).
func FuzzParseOtherNames(f *testing.F) {
	good := devicetest.SAN([]devicetest.OtherName{
		{OID: devicecert.OIDFCCID, Value: []byte("ABC123")},
		{OID: devicecert.OIDSerial, Value: []byte("SN:1/2")},
	}, []string{"cbsd.example"}, nil, nil, nil)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(devicetest.SAN([]devicetest.OtherName{
		{OID: devicecert.OIDFCCID, Value: []byte("A")},
		{OID: devicecert.OIDFCCID, Value: []byte("\xff"), Tag: cbasn1.PrintableString},
		{OID: devicecert.OIDFRN, Value: bytes.Repeat([]byte("9"), 300)},
	}, nil, nil, nil, nil))
	f.Add([]byte{0x30, 0x06, 0xa0, 0x04, 0x06, 0x02, 0x2a, 0x03})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, san []byte) {
		names, err := devicecert.ParseOtherNames(san)
		if err != nil {
			if names != nil {
				t.Fatalf("names %v with error %v", names, err)
			}
			return
		}
		for _, n := range names {
			if len(n.Value) > len(san) || !bytes.Contains(san, n.Value) {
				t.Fatalf("value %x is not from the input", n.Value)
			}
			if n.Tag == 0 {
				continue // devicetest would encode it as a UTF8String
			}
			// Re-encoded, a parsed name parses back the same.
			again, err := devicecert.ParseOtherNames(devicetest.SAN([]devicetest.OtherName{{OID: n.OID, Tag: n.Tag, Value: n.Value}}, nil, nil, nil, nil))
			if err != nil || len(again) != 1 || !again[0].OID.Equal(n.OID) || again[0].Tag != n.Tag || !bytes.Equal(again[0].Value, n.Value) {
				t.Fatalf("round trip of %+v: %+v, %v", n, again, err)
			}
		}
	})
}
