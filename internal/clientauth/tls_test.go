package clientauth_test

import (
	"crypto/x509/pkix"
	"testing"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

func TestMatchName(t *testing.T) {
	ca := ststest.NewCA(t, "ca")
	c := ca.Issue(t, ststest.CertOptions{
		Subject: pkix.Name{CommonName: "svc", Organization: []string{"Key Bridge, Inc."}, Country: []string{"US"}},
		DNS:     []string{"a.example.com", "b.example.com"},
		URIs:    []string{"spiffe://example.org/ns/prod/sa/svc"},
		IPs:     []string{"10.1.2.3", "2001:db8::1"},
		Emails:  []string{"ops@example.com"},
	}).Cert
	for _, tt := range []struct {
		b  store.Binding
		ok bool
	}{
		{store.Binding{TLSSubjectDN: `CN=svc,O=Key Bridge\, Inc.,C=US`}, true},
		{store.Binding{TLSSubjectDN: `CN=svc,O=Key Bridge\, Inc.`}, false},
		{store.Binding{TLSSubjectDN: `cn=svc,o=Key Bridge\, Inc.,c=US`}, false},
		{store.Binding{TLSSANDNS: "b.example.com"}, true},
		{store.Binding{TLSSANDNS: "B.example.com"}, false},
		{store.Binding{TLSSANDNS: "svc"}, false}, // the CN is not a SAN
		{store.Binding{TLSSANURI: "spiffe://example.org/ns/prod/sa/svc"}, true},
		{store.Binding{TLSSANURI: "spiffe://example.org/ns/prod/sa/svc2"}, false},
		{store.Binding{TLSSANIP: "10.1.2.3"}, true},
		{store.Binding{TLSSANIP: "::ffff:10.1.2.3"}, true}, // normalised
		{store.Binding{TLSSANIP: "2001:0db8:0:0::1"}, true},
		{store.Binding{TLSSANIP: "10.1.2.4"}, false},
		{store.Binding{TLSSANEmail: "ops@example.com"}, true},
		{store.Binding{TLSSANEmail: "ops@example.org"}, false},
		{store.Binding{}, false},
	} {
		if err := clientauth.MatchName(c, tt.b); (err == nil) != tt.ok {
			t.Errorf("%+v: %v, want ok=%v", tt.b, err, tt.ok)
		}
	}
}

// TestMatchNameEncodedSubject: the subject DN is the encoded RDN sequence,
// not pkix.Name.String's rebuilt name, which keeps only the last of two
// CNs (review of issue 13).
func TestMatchNameEncodedSubject(t *testing.T) {
	ca := ststest.NewCA(t, "ca")
	cn := []int{2, 5, 4, 3}
	c := ca.Issue(t, ststest.CertOptions{Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: cn, Value: "attacker"}, {Type: cn, Value: "victim"},
	}}}).Cert
	if c.Subject.String() != "CN=victim" {
		t.Fatalf("pkix.Name.String is %q; this test expects it to drop the first CN", c.Subject.String())
	}
	for dn, ok := range map[string]bool{"CN=victim": false, "CN=attacker": false, "CN=victim,CN=attacker": true} {
		if err := clientauth.MatchName(c, store.Binding{TLSSubjectDN: dn}); (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", dn, err, ok)
		}
	}
}
