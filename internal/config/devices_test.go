package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/store"
)

func TestDeviceProfilesGood(t *testing.T) {
	pki := devicetest.New(t)
	c, err := loadFile(t, `
device-profiles:
  - name: cbrs
    anchors-file: cbrs-root.pem
    eku: any
    crl-files: [cbsd-ca.crl, /var/lib/sts/root.crl]
    ocsp: http://ocsp.example.com
    fcc-ids: [ABC123, XYZ-9]
    audiences: [https://sas.example.com]
    scopes: [spectrum]
    condition: 'true'
    claims:
      site: '"lab"'
    token-ttl: 15m
    max-batch: 256
  - name: lab
    kind: x509
    anchors-file: cbrs-root.pem
    identity: cert.subject.cn
`, map[string]string{"cbrs-root.pem": string(pki.RootPEM)})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DeviceProfiles) != 2 {
		t.Fatalf("DeviceProfiles = %d", len(c.DeviceProfiles))
	}
	p := c.DeviceProfiles[0]
	if string(p.Anchors) != string(pki.RootPEM) || p.EKU != store.EKUAny || p.TokenTTL != 15*time.Minute || p.MaxBatch != 256 {
		t.Errorf("cbrs: %+v", p)
	}
	// A relative CRL path is taken from the file's directory.
	if len(p.CRLFiles) != 2 || !filepath.IsAbs(p.CRLFiles[0]) || filepath.Base(p.CRLFiles[0]) != "cbsd-ca.crl" || p.CRLFiles[1] != "/var/lib/sts/root.crl" {
		t.Errorf("CRLFiles = %v", p.CRLFiles)
	}
	if !slices.Equal(p.FCCIDs, []string{"ABC123", "XYZ-9"}) || p.Policy.Claims["site"] != `"lab"` || p.Policy.Condition != "true" {
		t.Errorf("cbrs: %+v", p)
	}
	if q := c.DeviceProfiles[1]; q.Kind != store.DeviceKindX509 || q.Identity != "cert.subject.cn" {
		t.Errorf("lab: %+v", q)
	}
}

// Every problem is named, with its profile and key.
func TestDeviceProfilesBad(t *testing.T) {
	_, err := loadFile(t, `
device-profiles:
  - name: Bad_Name
    kind: tpm
    anchors-file: missing.pem
    eku: serverAuth
    crl-files: [ "a\u0001.crl" ]
    ocsp: ftp://ocsp.example.com
    fcc-ids: [ "A\tB", "TOOLONGFCCIDXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX" ]
    scopes: [ 'a"b' ]
    token-ttl: forever
    max-batch: 513
  - name: x
    kind: x509
    anchors-file: notpem.pem
  - name: x
    anchors-file: notpem.pem
`, map[string]string{"notpem.pem": "hello"})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`device-profiles: profile "Bad_Name": name:`,
		`profile "Bad_Name": kind: "tpm"`,
		`profile "Bad_Name": anchors-file: open`,
		`profile "Bad_Name": eku: "serverAuth"`,
		`profile "Bad_Name": crl-files:`,
		`profile "Bad_Name": ocsp:`,
		`profile "Bad_Name": fcc-ids: the FCC ID "A\tB" holds a control character`,
		`profile "Bad_Name": fcc-ids: the FCC ID is longer than 64 bytes`,
		`profile "Bad_Name": scopes:`,
		`profile "Bad_Name": token-ttl: "forever"`,
		`profile "Bad_Name": max-batch: 513`,
		`profile "x": identity: is required`,
		`profile "x": anchors-file: is not PEM`,
		`profile "x": declared twice`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestDeviceProfilesUnknownKey(t *testing.T) {
	_, err := loadFile(t, `
device-profiles:
  - name: cbrs
    anchor-file: root.pem
`, nil)
	if err == nil || !strings.Contains(err.Error(), "anchor-file") {
		t.Errorf("misspelt key: %v", err)
	}
}
