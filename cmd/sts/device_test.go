package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/store"
)

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDeviceProfileLifecycle(t *testing.T) {
	c := newCLI(t, "")
	pki := devicetest.New(t)
	roots := writeFile(t, "roots.pem", pki.RootPEM)

	if out := c.ok("device", "profile", "list"); !strings.Contains(out, "No device profiles") {
		t.Errorf("empty list: %q", out)
	}
	var v deviceProfileView
	c.okJSON(&v, "device", "profile", "add", "cbrs", "--anchors", roots, "--eku", "any",
		"--fcc-id", "ABC123", "--fcc-id", "XYZ-9", "--audience", "https://sas.example.com", "--scope", "spectrum",
		"--condition", "true", "--claim", `site="lab"`, "--token-ttl", "15m", "--max-batch", "200", "-o", "json")
	if v.Name != "cbrs" || v.Kind != store.DeviceKindCBRS || !v.Enabled || v.Source != "store" || v.EKU != store.EKUAny ||
		len(v.Anchors) != 1 || !strings.Contains(v.Anchors[0].Subject, "Test CBRS Root CA") ||
		!slices.Equal(v.FCCIDs, []string{"ABC123", "XYZ-9"}) || v.TokenTTL != 900 || v.MaxBatch != 200 ||
		v.Claims["site"] != `"lab"` {
		t.Errorf("add -o json = %+v", v)
	}
	out := c.ok("device", "profile", "add", "lab", "--kind", "x509", "--anchors", roots, "--identity", "cert.subject.cn")
	for _, want := range []string{`Added device profile "lab"`, "x509", "cert.subject.cn", "clientAuth", "max_batch:", "100"} {
		if !strings.Contains(out, want) {
			t.Errorf("add output lacks %q:\n%s", want, out)
		}
	}
	out = c.ok("device", "profile", "list")
	if !strings.Contains(out, "cbrs") || !strings.Contains(out, "lab") {
		t.Errorf("list:\n%s", out)
	}
	c.fail(`a device profile named "cbrs" already exists`, "device", "profile", "add", "cbrs", "--anchors", roots)

	// Update: only what is given changes; a relative CRL path is made
	// absolute.
	crl := filepath.Join(t.TempDir(), "ca.crl")
	pki.CRL(t, pki.CBSDCA, nil, pki.Root.Cert.NotBefore, pki.Root.Cert.NotAfter, crl)
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, crl)
	if err != nil {
		t.Fatal(err)
	}
	c.okJSON(&v, "device", "profile", "update", "cbrs", "--crl", rel, "--fcc-id", "", "-o", "json")
	if !slices.Equal(v.CRLFiles, []string{crl}) || len(v.FCCIDs) != 0 || v.EKU != store.EKUAny || v.MaxBatch != 200 {
		t.Errorf("update -o json = %+v", v)
	}
	c.fail("nothing to change", "device", "profile", "update", "cbrs")

	out = c.ok("device", "profile", "disable", "cbrs")
	if !strings.Contains(out, `Device profile "cbrs" is now disabled (was enabled)`) {
		t.Errorf("disable: %q", out)
	}
	out = c.ok("device", "profile", "enable", "cbrs")
	if !strings.Contains(out, "now enabled") {
		t.Errorf("enable: %q", out)
	}
	out = c.ok("device", "profile", "show", "cbrs")
	if !strings.Contains(out, crl) || !strings.Contains(out, "(any)") {
		t.Errorf("show:\n%s", out)
	}
	c.ok("device", "profile", "remove", "lab")
	c.fail(`device profile "lab" not found`, "device", "profile", "show", "lab")
	c.fail(`device profile "lab" not found`, "device", "profile", "remove", "lab")

	recs, err := c.env().Store.ListAudit(t.Context(), store.AuditFilter{Action: "device.profile"})
	if err != nil || len(recs) != 6 {
		t.Errorf("audit: %d records, %v", len(recs), err)
	}
}

// Every problem is named by its flag, on one line, and nothing is stored.
func TestDeviceProfileErrors(t *testing.T) {
	c := newCLI(t, "")
	pki := devicetest.New(t)
	roots := writeFile(t, "roots.pem", pki.RootPEM)
	leaf := writeFile(t, "leaf.pem", pki.Leaf(t, devicetest.Leaf{Role: "cbsd", FCCID: "A", Serial: "1"}).PEM())
	c.fail("--anchors is required", "device", "profile", "add", "x")
	c.fail("--anchors: open", "device", "profile", "add", "x", "--anchors", "/nonexistent.pem")
	c.fail("--anchors certificate 1", "device", "profile", "add", "x", "--anchors", leaf)
	msg := c.fail("--kind", "device", "profile", "add", "Bad", "--anchors", roots, "--kind", "tpm", "--eku", "server",
		"--max-batch", "600", "--token-ttl", "48h", "--ocsp", "ftp://x", "--fcc-id", "A\x01B")
	for _, want := range []string{"NAME", "--eku", "--max-batch", "--token-ttl", "--ocsp", "--fcc-id"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %s: %s", want, msg)
		}
	}
	c.fail("--identity", "device", "profile", "add", "x", "--kind", "x509", "--anchors", roots)
	c.fail("--identity", "device", "profile", "add", "x", "--kind", "x509", "--anchors", roots, "--identity", "cert.nosuch")
	c.fail("--condition", "device", "profile", "add", "x", "--anchors", roots, "--condition", "1 +")
	c.fail("--crl", "device", "profile", "add", "x", "--anchors", roots, "--crl", "/nonexistent.crl")
	if out := c.ok("device", "profile", "list"); !strings.Contains(out, "No device profiles") {
		t.Errorf("refused profiles stored:\n%s", out)
	}
}

func TestDeviceDelegations(t *testing.T) {
	c := newCLI(t, "")
	var acct accountView
	c.okJSON(&acct, "account", "create", "organization", "--name", "Fleet Co", "-o", "json")
	const proxy = "dp:FRN0001:proxy.example.com"

	out := c.ok("device", "delegate", "--proxy", proxy, "--fcc-id", "ABC123", "--serial", "SN:1/a")
	if !strings.Contains(out, "may now obtain tokens") {
		t.Errorf("delegate: %q", out)
	}
	out = c.ok("device", "delegate", "--proxy", proxy, "--fcc-id", "ABC123", "--serial", "SN:1/a")
	if !strings.Contains(out, "already") {
		t.Errorf("delegate again: %q", out)
	}
	c.fail("--proxy, --serial required", "device", "delegate", "--fcc-id", "A")
	c.fail("--proxy the domain proxy", "device", "delegate", "--proxy", "cbsd:x", "--fcc-id", "A", "--serial", "1")
	c.fail("--serial the serial number is longer", "device", "delegate", "--proxy", proxy, "--fcc-id", "A", "--serial", strings.Repeat("x", 65))
	c.fail(`--account no account "nope"`, "device", "delegate", "--proxy", proxy, "--fcc-id", "A", "--serial", "1", "--account", "nope")

	csv := writeFile(t, "fleet.csv", []byte("fcc_id,serial\nABC123,2\nABC123,3\nXYZ-9,1\n"))
	out = c.ok("device", "import", "--account", acct.AccountID, "--proxy", proxy, csv)
	if !strings.Contains(out, "Imported 3 devices") || !strings.Contains(out, "3 new") {
		t.Errorf("import: %q", out)
	}
	bad := writeFile(t, "bad.csv", []byte("ABC123,4\nABC123\n,5\nABC123,6\n"))
	msg := c.fail("nothing imported", "device", "import", "--account", acct.AccountID, "--proxy", proxy, bad)
	if !strings.Contains(msg, "line 2:") || !strings.Contains(msg, "line 3:") || strings.Contains(msg, "line 1:") {
		t.Errorf("bad import: %s", msg)
	}
	c.fail("--account and --proxy are required", "device", "import", "--proxy", proxy, csv)
	// From standard input.
	stdout, _, err := c.runIn("XYZ-9,2\n", "device", "import", "--account", acct.AccountID, "--proxy", proxy, "-")
	if err != nil || !strings.Contains(stdout, "Imported 1 devices") {
		t.Errorf("import from stdin: %q, %v", stdout, err)
	}

	var ds []delegationView
	c.okJSON(&ds, "device", "list", "--proxy", proxy, "-o", "json")
	if len(ds) != 5 || ds[0].FCCID != "ABC123" || ds[0].Serial != "2" || ds[4].FCCID != "XYZ-9" {
		t.Errorf("list = %+v", ds)
	}
	c.okJSON(&ds, "device", "list", "--account", acct.AccountID, "-o", "json")
	if len(ds) != 4 {
		t.Errorf("account's list = %+v", ds)
	}
	out = c.ok("device", "list")
	if !strings.Contains(out, "SN:1/a") || !strings.Contains(out, proxy) {
		t.Errorf("list:\n%s", out)
	}
	c.ok("device", "undelegate", "--proxy", proxy, "--fcc-id", "ABC123", "--serial", "SN:1/a")
	c.fail("has no delegation", "device", "undelegate", "--proxy", proxy, "--fcc-id", "ABC123", "--serial", "SN:1/a")
	got, err := c.env().Store.Delegated(t.Context(), proxy, []store.DeviceRef{{FCCID: "ABC123", Serial: "SN:1/a"}, {FCCID: "XYZ-9", Serial: "2"}})
	if err != nil || got[0] || !got[1] {
		t.Errorf("Delegated = %v, %v", got, err)
	}
}

// A declared profile that does not compile (its CRL file is missing)
// stops `sts serve` before it listens, naming the profile; one that does
// not parse is refused when the file is loaded.
func TestServeDeviceProfilesRefused(t *testing.T) {
	c := newCLI(t, "")
	pki := devicetest.New(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "roots.pem"), pki.RootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sts.yaml")
	os.WriteFile(cfg, []byte("device-profiles:\n  - name: cbrs\n    anchors-file: roots.pem\n    crl-files: [missing.crl]\n"), 0o600)
	c.fail(`device profiles: device profile "cbrs": crl`, "serve", "--config", cfg, "--addr", "127.0.0.1:0")
	os.WriteFile(cfg, []byte("device-profiles:\n  - name: cbrs\n    anchors-file: roots.pem\n    max-batch: 1000\n"), 0o600)
	c.fail(`device-profiles: profile "cbrs": max-batch: 1000 must be between 1 and 512`, "serve", "--config", cfg, "--addr", "127.0.0.1:0")
	if out := c.ok("device", "profile", "list"); !strings.Contains(out, "No device profiles") {
		t.Errorf("a refused file stored profiles:\n%s", out)
	}
}
