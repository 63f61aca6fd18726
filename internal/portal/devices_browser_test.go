package portal_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// TestBrowserDevices: in Chromium, an operator adds a device profile (a
// bad CEL rule first, refused beside its field with the anchors kept),
// sees it listed, then imports a CSV of devices on an account's page (a
// bad file first, its bad rows listed by line) and sees them delegated.
// Screenshots go to $TMPDIR/sts-portal-screenshots/ like TestBrowser's.
func TestBrowserDevices(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	b := newBrowser(t, s)
	ctx := context.Background()
	pw := s.CreateOperator("admin")
	pki := devicetest.New(t)
	acct, _, err := s.Accounts.Create(ctx, store.AccountOrganization, "Fleet Radio Co", nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	if st := b.signIn("admin", pw); st != http.StatusOK {
		t.Fatalf("sign-in: %d", st)
	}
	if st := b.open("/portal/devices"); st != http.StatusOK || !b.has("No device PKI is trusted") {
		t.Fatalf("devices: %d", st)
	}
	if st := b.submit("#add-device"); st != http.StatusOK {
		t.Fatalf("add page: %d", st)
	}
	b.fill("#name", "cbrs")
	b.fill("#anchors", string(pki.RootPEM))
	b.run("choose the EKU policy", chromedp.SetValue(chromedp.CSS("#eku"), "any"))
	b.fill("#audience", "https://sas.example.com")
	b.fill("#condition", "request.scope.size() >")
	if st := b.submit("#save-device"); st != http.StatusUnprocessableEntity {
		t.Fatalf("bad rule: %d", st)
	}
	if msg := b.text("#condition-error"); !strings.Contains(msg, "1:") {
		t.Fatalf("bad rule message %q", msg)
	}
	if v := b.value("#anchors"); !strings.Contains(v, "BEGIN CERTIFICATE") {
		t.Fatal("the refused form lost the anchors")
	}
	b.shot("device-bad-rule")
	b.fill("#condition", "request.scope.size() >= 0")
	if st := b.submit("#save-device"); st != http.StatusOK || !b.has("The device profile is added") {
		t.Fatalf("add: %d", st)
	}
	if got := b.text("#detail-status"); got != "enabled" {
		t.Fatalf("status %q", got)
	}
	b.shot("device-detail")
	b.open("/portal/devices")
	if !b.has("Test CBRS Root CA") || !b.has("cbrs") {
		t.Fatal("the list does not show the new profile")
	}
	b.shot("devices")

	// The account's CSV import: a bad file, then a good one.
	dir := t.TempDir()
	badCSV, goodCSV := filepath.Join(dir, "bad.csv"), filepath.Join(dir, "fleet.csv")
	os.WriteFile(badCSV, []byte("fcc_id,serial\nABC123,1\nABC123\n"), 0o600)
	os.WriteFile(goodCSV, []byte("fcc_id,serial\nABC123,SN-1\nABC123,SN-2\nXYZ-9,A:1/2\n"), 0o600)
	if st := b.open("/portal/accounts/" + acct.ID); st != http.StatusOK {
		t.Fatalf("account: %d", st)
	}
	b.fill("#import-proxy", testProxy)
	b.run("choose the bad file", chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{badCSV}))
	if st := b.submit("#import-submit"); st != http.StatusUnprocessableEntity {
		t.Fatalf("bad import: %d", st)
	}
	if rows := b.text("#import-errors"); !strings.Contains(rows, "3") || !strings.Contains(rows, "want 2 fields") {
		t.Fatalf("bad rows: %q", rows)
	}
	b.shot("device-import-bad")
	b.open("/portal/accounts/" + acct.ID)
	b.fill("#import-proxy", testProxy)
	b.run("choose the file", chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{goodCSV}))
	if st := b.submit("#import-submit"); st != http.StatusOK || !b.has("3 devices imported: 3 new") {
		t.Fatalf("import: %d", st)
	}
	if !b.has("A:1/2") || !b.has(testProxy) {
		t.Fatal("the delegations page does not list the devices")
	}
	b.shot("delegations")
	ok, err := s.Server.Devices.Delegated(ctx, testProxy, []store.DeviceRef{{FCCID: "XYZ-9", Serial: "A:1/2"}})
	if err != nil || !ok[0] {
		t.Fatalf("Delegated = %v, %v", ok, err)
	}
}
