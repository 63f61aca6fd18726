package register

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseMetadata feeds arbitrary bodies to the request parser: it must
// never panic, and what it accepts must build a client or be refused with
// field problems, never stored as invalid JSON.
func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"client_name":"x","grant_types":["client_credentials"],"scope":"read%20write"}`,
		`{"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]},"contacts":["a"]}`,
		`{"client_name#ja":"名前","extended_parameters":{"a":"b"},"hardware_address":"00:11:22:33:44:55"}`,
		`{"access_token_ttl":1e3,"refresh_token_ttl":"1","allow_impersonation":null}`,
		`{"a":1,"a":2}`, `[]`, `{"x":`, "{\"client_name\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, oe := decodeObject(body)
		if oe != nil {
			return
		}
		md, oe := parseMetadata(fields)
		if oe != nil {
			return
		}
		spec, err := md.spec("acct-x")
		if err != nil {
			t.Fatalf("spec: %v", err)
		}
		if !json.Valid(spec.Metadata) {
			t.Fatalf("stored metadata is not JSON: %q", spec.Metadata)
		}
		if c, err := spec.Build(time.Now()); err == nil {
			e := New(Options{Issuer: "https://sts.example.com"})
			if _, err := json.Marshal(e.info(c, "s", "t")); err != nil {
				t.Fatalf("info does not encode: %v", err)
			}
		}
	})
}
