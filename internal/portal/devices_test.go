package portal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

const testProxy = "dp:FRN0001:proxy.example.com"

// postMultipart posts fields and a file to a portal path with the
// session's CSRF token (unless csrf is false).
func postMultipart(t *testing.T, s *ststest.STS, p *ststest.PortalSession, path string, fields map[string]string, file []byte, csrf bool) *ststest.Response {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if csrf {
		mw.WriteField("csrf", p.CSRF)
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if file != nil {
		fw, err := mw.CreateFormFile("file", "fleet.csv")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file)
	}
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, &b)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := p.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &ststest.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// TestDevicePages adds, lists, shows, edits, disables, enables and
// removes a device profile through the portal; each change is audited
// with the operator's name and reaches the server's device trust at once.
func TestDevicePages(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	pw := s.CreateOperator("alice")
	p := s.PortalSignIn("alice", pw)
	pki := devicetest.New(t)
	leaf := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "SN-1"})
	trusted := func() bool {
		t.Helper()
		tr, err := s.Server.Devices.Trust(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = tr.Verify(ctx, leaf.Chain, devicecert.RoleCBSD, time.Now())
		return err == nil
	}

	if r := p.Get("/portal/devices"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "No device PKI is trusted") {
		t.Fatalf("empty list: %d\n%s", r.Status, r.Body)
	}
	checkHeaders(t, "devices", p.Get("/portal/devices/new"), true)

	form := url.Values{
		"name": {"cbrs"}, "kind": {"cbrs"}, "anchors": {string(pki.RootPEM)}, "eku": {"any"},
		"audience": {"https://sas.example.com\n"}, "scope": {"spectrum"}, "max-batch": {"200"},
		"condition": {`request.scope.size() >= 0`}, "claims": {"site=\"lab\"\n"}, "token-ttl": {"15m"},
	}
	r := p.Post("/portal/devices/new", form)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal/devices/cbrs?msg=deviceadded" {
		t.Fatalf("add: %d %s\n%s", r.Status, r.Header.Get("Location"), r.Body)
	}
	d, err := s.Store.GetDeviceProfile(ctx, "cbrs")
	if err != nil || !d.Enabled || d.EKU != store.EKUAny || d.MaxBatch != 200 || d.TokenTTL != 15*time.Minute || d.Policy.Claims["site"] != `"lab"` {
		t.Fatalf("stored %+v, %v", d, err)
	}
	if !trusted() {
		t.Fatal("the server does not trust the new profile's devices")
	}
	page := string(p.Get("/portal/devices/cbrs?msg=deviceadded").Body)
	for _, want := range []string{"The device profile is added", "Test CBRS Root CA", "https://sas.example.com", `id="disable"`, `id="save-device"`, "site=&#34;lab&#34;"} {
		if !strings.Contains(page, want) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	checkHeaders(t, "device detail", p.Get("/portal/devices/cbrs"), true)
	if r := p.Get("/portal/devices/nope"); r.Status != http.StatusNotFound {
		t.Errorf("unknown profile: %d", r.Status)
	}
	if list := string(p.Get("/portal/devices").Body); !strings.Contains(list, `href="/portal/devices/cbrs"`) || !strings.Contains(list, "Test CBRS Root CA") {
		t.Errorf("list:\n%s", list)
	}

	// Edit: an allow-list without the device's FCC ID.
	form.Set("name", "renamed")
	form.Set("fcc-id", "OTHER1\n")
	if r := p.Post("/portal/devices/cbrs", form); r.Header.Get("Location") != "/portal/devices/cbrs?msg=deviceupd" {
		t.Fatalf("edit: %d\n%s", r.Status, r.Body)
	}
	if d, _ = s.Store.GetDeviceProfile(ctx, "cbrs"); len(d.FCCIDs) != 1 || d.FCCIDs[0] != "OTHER1" {
		t.Fatalf("edited %+v", d)
	}
	if trusted() {
		t.Fatal("the edit did not reach the server")
	}
	form.Del("fcc-id")
	p.Post("/portal/devices/cbrs", form)

	if r := p.Post("/portal/devices/cbrs/status", url.Values{"action": {"disable"}}); r.Header.Get("Location") != "/portal/devices/cbrs?msg=devicedisabled" {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	if trusted() {
		t.Fatal("still trusted when disabled")
	}
	if r := p.Post("/portal/devices/cbrs/status", url.Values{"action": {"enable"}}); r.Header.Get("Location") != "/portal/devices/cbrs?msg=deviceenabled" {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	if !trusted() {
		t.Fatal("not trusted when enabled again")
	}
	if r := p.Post("/portal/devices/cbrs/delete", url.Values{"confirm": {"other"}}); r.Status != http.StatusBadRequest {
		t.Fatalf("unconfirmed removal: %d", r.Status)
	}
	// Without the CSRF token nothing changes.
	if r := p.Post("/portal/devices/cbrs/delete", url.Values{"confirm": {"cbrs"}, "csrf": {"forged"}}); r.Status != http.StatusForbidden {
		t.Fatalf("forged removal: %d", r.Status)
	}
	if r := p.Post("/portal/devices/cbrs/delete", url.Values{"confirm": {"cbrs"}}); r.Header.Get("Location") != "/portal/devices?msg=deviceremoved" {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	if _, err := s.Store.GetDeviceProfile(ctx, "cbrs"); !errors.Is(err, store.ErrNotFound) || trusted() {
		t.Fatalf("removed profile: %v", err)
	}
	want := map[string]bool{"device.profile.add": false, "device.profile.update": false, "device.profile.disable": false, "device.profile.enable": false, "device.profile.remove": false}
	for _, rec := range auditActions(t, s, "device.profile") {
		if _, ok := want[rec.Action]; ok && rec.Subject == "operator:alice" {
			want[rec.Action] = true
		}
	}
	for a, seen := range want {
		if !seen {
			t.Errorf("no audit record %s by operator:alice", a)
		}
	}
}

// TestDeviceProblems: problems beside their fields, input kept and
// escaped, nothing stored; a configuration file's profile is read-only;
// account holders see none of it.
func TestDeviceProblems(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	pw := s.CreateOperator("alice")
	p := s.PortalSignIn("alice", pw)
	pki := devicetest.New(t)

	r := p.Post("/portal/devices/new", url.Values{
		"name": {"<script>x</script>"}, "kind": {"x509"}, "anchors": {"not pem"}, "eku": {"serverAuth"},
		"max-batch": {"513"}, "token-ttl": {"soon"}, "fcc-id": {strings.Repeat("F", 65)}, "condition": {"1 +"}, "claims": {"broken"},
	})
	body := string(r.Body)
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad form: %d", r.Status)
	}
	for _, want := range []string{`id="name-error"`, `id="anchors-error"`, `id="eku-error"`, `id="max-batch-error"`, `id="token-ttl-error"`,
		`id="fcc-id-error"`, `id="identity-error"`, `id="claims-error"`, `value="&lt;script&gt;x&lt;/script&gt;"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the refused form lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>x") {
		t.Error("the name is not escaped")
	}
	// The CEL problem from the service, beside the condition.
	r = p.Post("/portal/devices/new", url.Values{"name": {"x"}, "anchors": {string(pki.RootPEM)}, "condition": {"1 +"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `id="condition-error"`) {
		t.Fatalf("bad CEL: %d\n%s", r.Status, r.Body)
	}
	// A missing CRL file, from devicecert, beside the CRL files.
	r = p.Post("/portal/devices/new", url.Values{"name": {"x"}, "anchors": {string(pki.RootPEM)}, "crl": {"/nonexistent/x.crl"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `id="crl-error"`) {
		t.Fatalf("missing CRL: %d\n%s", r.Status, r.Body)
	}
	if l, _ := s.Store.ListDeviceProfiles(ctx); len(l) != 0 {
		t.Fatalf("refused forms stored %d profiles", len(l))
	}

	// Declared in the configuration file: read-only.
	if _, err := s.Server.Devices.ApplyConfig(ctx, []devices.Spec{{Name: "declared", Anchors: pki.RootPEM}}); err != nil {
		t.Fatal(err)
	}
	page := string(p.Get("/portal/devices/declared").Body)
	if !strings.Contains(page, `id="readonly-note"`) || strings.Contains(page, `id="save-device"`) || strings.Contains(page, `id="disable"`) {
		t.Errorf("config profile page:\n%s", page)
	}
	if r := p.Post("/portal/devices/declared/status", url.Values{"action": {"disable"}}); r.Status != http.StatusConflict {
		t.Errorf("disable a declared profile: %d", r.Status)
	}
	if r := p.Post("/portal/devices/declared", url.Values{"anchors": {string(pki.RootPEM)}}); r.Status != http.StatusConflict {
		t.Errorf("edit a declared profile: %d", r.Status)
	}

	// Account holders: no device pages.
	acct, secret, err := s.Accounts.Create(ctx, store.AccountIndividual, "Fleet", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	holder := s.PortalSignIn(acct.ID, secret)
	for _, path := range []string{"/portal/devices", "/portal/devices/declared", "/portal/delegations"} {
		if r := holder.Get(path); r.Status != http.StatusNotFound {
			t.Errorf("account holder GET %s: %d", path, r.Status)
		}
	}
	if r := postMultipart(t, s, holder, "/portal/accounts/"+acct.ID+"/delegations/import", map[string]string{"proxy": testProxy}, []byte("A,1\n"), true); r.Status != http.StatusNotFound {
		t.Errorf("account holder import: %d", r.Status)
	}
	if page := string(holder.Get("/portal/accounts/" + acct.ID).Body); strings.Contains(page, "import-form") {
		t.Error("the account holder sees the import form")
	}
}

// TestDelegationImport: an operator imports an account's CSV (multipart,
// bounded, CSRF-checked); bad rows are listed by line, escaped, and
// nothing is written; the delegations page lists them by proxy.
func TestDelegationImport(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	pw := s.CreateOperator("alice")
	p := s.PortalSignIn("alice", pw)
	acct, _, err := s.Accounts.Create(ctx, store.AccountOrganization, "Fleet", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := "/portal/accounts/" + acct.ID + "/delegations/import"
	if page := string(p.Get("/portal/accounts/" + acct.ID).Body); !strings.Contains(page, `id="import-form"`) {
		t.Fatal("the account page has no import form")
	}

	// Bad rows: each by line, escaped; nothing written.
	bad := "fcc_id,serial\nABC123,1\n<b>bad</b>\x01,2\nABC123\nABC123,\x01\n"
	r := postMultipart(t, s, p, path, map[string]string{"proxy": testProxy}, []byte(bad), true)
	body := string(r.Body)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="import-errors"`) {
		t.Fatalf("bad import: %d\n%s", r.Status, body)
	}
	for _, line := range []string{"<td>3</td>", "<td>4</td>", "<td>5</td>"} {
		if !strings.Contains(body, line) {
			t.Errorf("bad rows lack line %s", line)
		}
	}
	if strings.Contains(body, "<b>bad</b>") || !strings.Contains(html.UnescapeString(body), "<b>bad</b>") {
		t.Error("a bad row's text is not escaped")
	}
	if ds, _ := s.Store.ListDelegations(ctx, store.DelegationFilter{}); len(ds) != 0 {
		t.Fatalf("a bad import wrote %d delegations", len(ds))
	}
	// No CSRF token: refused.
	if r := postMultipart(t, s, p, path, map[string]string{"proxy": testProxy}, []byte("ABC123,1\n"), false); r.Status != http.StatusForbidden {
		t.Errorf("import without CSRF: %d", r.Status)
	}
	// A bad proxy, no file.
	if r := postMultipart(t, s, p, path, map[string]string{"proxy": "cbsd:x"}, []byte("ABC123,1\n"), true); r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `id="import-problem"`) {
		t.Errorf("bad proxy: %d", r.Status)
	}
	if r := postMultipart(t, s, p, path, map[string]string{"proxy": testProxy}, nil, true); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("no file: %d", r.Status)
	}
	// A file over the bound is refused before it is read whole.
	huge := bytes.Repeat([]byte("ABC123,"+strings.Repeat("s", 56)+"\n"), (devices.MaxImportSize+(128<<10))/64)
	if r := postMultipart(t, s, p, path, map[string]string{"proxy": testProxy}, huge, true); r.Status < 400 {
		t.Errorf("oversized import: %d", r.Status)
	}

	// A good file.
	var good strings.Builder
	good.WriteString("fcc_id,serial\r\n")
	for i := range 250 {
		fmt.Fprintf(&good, "ABC123,SN:%04d/x\r\n", i)
	}
	r = postMultipart(t, s, p, path, map[string]string{"proxy": testProxy}, []byte(good.String()), true)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("import: %d\n%s", r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	page := string(p.Get(loc).Body)
	if !strings.Contains(page, "250 devices imported: 250 new") || !strings.Contains(page, testProxy) || !strings.Contains(page, "SN:0249/x") {
		t.Errorf("after import (%s):\n%.2000s", loc, page)
	}
	ok, err := s.Server.Devices.Delegated(ctx, testProxy, []store.DeviceRef{{FCCID: "ABC123", Serial: "SN:0000/x"}, {FCCID: "ABC123", Serial: "SN:9999/x"}})
	if err != nil || !ok[0] || ok[1] {
		t.Errorf("Delegated = %v, %v", ok, err)
	}
	recs := auditActions(t, s, "device.import")
	if len(recs) != 1 || recs[0].Subject != "operator:alice" || recs[0].AccountID != acct.ID {
		t.Errorf("audit: %+v", recs)
	}

	// Remove one from the list page.
	r = p.Post("/portal/delegations/delete", url.Values{"proxy": {testProxy}, "fcc-id": {"ABC123"}, "serial": {"SN:0000/x"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("undelegate: %d\n%s", r.Status, r.Body)
	}
	if ok, _ := s.Server.Devices.Delegated(ctx, testProxy, []store.DeviceRef{{FCCID: "ABC123", Serial: "SN:0000/x"}}); ok[0] {
		t.Error("still delegated")
	}
	if r := p.Post("/portal/delegations/delete", url.Values{"proxy": {testProxy}, "fcc-id": {"ABC123"}, "serial": {"SN:0000/x"}}); r.Status != http.StatusNotFound {
		t.Errorf("undelegate twice: %d", r.Status)
	}
	if page := string(p.Get("/portal/delegations?proxy=dp:none:x").Body); !strings.Contains(page, `id="no-delegations"`) {
		t.Error("a proxy without delegations")
	}
}
