package portal

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/store"
)

// --- Device trust profiles and delegations (operators only; issue 14) ---

func devicePath(name string) string { return Path + "/devices/" + url.PathEscape(name) }

// delegationsPath lists the delegations of a proxy ("" for all).
func delegationsPath(proxy string) string {
	if proxy == "" {
		return Path + "/delegations"
	}
	return Path + "/delegations?proxy=" + url.QueryEscape(proxy)
}

// importPath is where an account's CSV import is posted.
func importPath(accountID string) string { return accountPath(accountID) + "/delegations/import" }

// maxImportBody bounds the multipart body of a CSV import: the file's own
// bound and room for the other fields.
const maxImportBody = devices.MaxImportSize + 64<<10

func (p *Portal) deviceService() (*devices.Service, error) {
	if p.o.Devices == nil {
		return nil, &pageError{http.StatusNotFound, "Device profiles are not managed by this portal."}
	}
	return p.o.Devices, nil
}

// anchor is one trust anchor as the detail page shows it.
type anchor struct {
	Subject, NotAfter, SHA256 string
}

func anchorsOf(b []byte) []anchor {
	var out []anchor
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(c.Raw)
		out = append(out, anchor{Subject: c.Subject.String(), NotAfter: c.NotAfter.UTC().Format(timeLayout), SHA256: hex.EncodeToString(sum[:])})
	}
}

func (p *Portal) deviceList(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	list, err := svc.List(r.Context())
	if err != nil {
		return err
	}
	return p.ok(w, r, "devices", &view{Title: "Device profiles", Nav: "devices", User: u, Data: list})
}

// deviceForm is the add and edit form, as typed.
type deviceForm struct {
	Name, Kind, Anchors, Identity, EKU   string
	CRLFiles, OCSP, FCCIDs, Audiences    string
	Scopes, Condition, ScopeRule, Claims string
	TokenTTL, MaxBatch                   string
	// Errors by field name (the Problem fields of internal/devices, the
	// claims' beside the claims; "general" for the whole profile).
	Errors map[string]string
}

func newDeviceForm() *deviceForm {
	return &deviceForm{Kind: store.DeviceKindCBRS, EKU: store.EKUClientAuth, MaxBatch: strconv.Itoa(devices.DefaultMaxBatch), Errors: map[string]string{}}
}

func deviceFormOf(d *store.DeviceProfile) *deviceForm {
	return &deviceForm{
		Name: d.Name, Kind: d.Kind, Anchors: string(d.Anchors), Identity: d.Identity, EKU: d.EKU,
		CRLFiles: strings.Join(d.CRLFiles, "\n"), OCSP: d.OCSPURL, FCCIDs: strings.Join(d.FCCIDs, "\n"),
		Audiences: strings.Join(d.Audiences, "\n"), Scopes: strings.Join(d.Scopes, " "),
		Condition: d.Policy.Condition, ScopeRule: d.Policy.Scope, Claims: claimsText(d.Policy.Claims),
		TokenTTL: durationText(d.TokenTTL), MaxBatch: strconv.Itoa(d.MaxBatch), Errors: map[string]string{},
	}
}

func parseDeviceForm(r *http.Request) *deviceForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return &deviceForm{
		Name: v("name"), Kind: v("kind"), Anchors: v("anchors"), Identity: v("identity"), EKU: v("eku"),
		CRLFiles: r.PostFormValue("crl"), OCSP: v("ocsp"), FCCIDs: r.PostFormValue("fcc-id"),
		Audiences: r.PostFormValue("audience"), Scopes: r.PostFormValue("scope"),
		Condition: v("condition"), ScopeRule: v("scope-rule"), Claims: r.PostFormValue("claims"),
		TokenTTL: v("token-ttl"), MaxBatch: v("max-batch"), Errors: map[string]string{},
	}
}

// apply writes the form into s, recording the problems it sees itself.
func (f *deviceForm) apply(s *devices.Spec) {
	s.Name, s.Kind, s.Identity, s.EKU, s.OCSPURL = f.Name, f.Kind, f.Identity, f.EKU, f.OCSP
	s.Anchors = nil
	if f.Anchors != "" {
		s.Anchors = []byte(f.Anchors + "\n")
	}
	s.CRLFiles = f.lines("crl", f.CRLFiles, "CRL file")
	s.FCCIDs = f.lines("fcc-id", f.FCCIDs, "FCC ID")
	s.Audiences = f.lines("audience", f.Audiences, "audience")
	s.Scopes = strings.Fields(f.Scopes)
	var err error
	if s.TokenTTL, err = parseTTL(f.TokenTTL); err != nil {
		f.Errors["token-ttl"] = err.Error()
	}
	s.MaxBatch = 0
	if f.MaxBatch != "" {
		if s.MaxBatch, err = strconv.Atoi(f.MaxBatch); err != nil {
			f.Errors["max-batch"] = "must be a whole number"
		}
	}
	claims, msg := parseClaimLines(f.Claims)
	if msg != "" {
		f.Errors["claims"] = msg
	}
	s.Policy = store.Policy{Condition: f.Condition, Scope: f.ScopeRule, Claims: claims}
}

func (f *deviceForm) lines(field, text, what string) []string {
	vals, bad := splitLines(text)
	if bad != "" {
		f.Errors[field] = lineError(bad, what)
	}
	return vals
}

// addProblems records the service's problems beside their fields.
func (f *deviceForm) addProblems(err error) bool {
	var probs devices.Problems
	if !errors.As(err, &probs) {
		return false
	}
	known := map[string]bool{
		"name": true, "kind": true, "anchors": true, "identity": true, "eku": true, "crl": true, "ocsp": true,
		"fcc-id": true, "audience": true, "scope": true, "condition": true, "scope-rule": true,
		"token-ttl": true, "max-batch": true,
	}
	for _, pr := range probs {
		field, msg := pr.Field, pr.Msg
		switch {
		case strings.HasPrefix(field, "claim"):
			field, msg = "claims", pr.Field+": "+pr.Msg
		case field == "":
			field = "general"
		case !known[field]:
			field, msg = "general", pr.Field+": "+pr.Msg
		}
		if f.Errors[field] == "" {
			f.Errors[field] = msg
		} else {
			f.Errors[field] += "; " + msg
		}
	}
	return true
}

type deviceFormData struct {
	Form    *deviceForm
	Profile *store.DeviceProfile // nil on the add page
	Anchors []anchor
	// CompileError is why an enabled profile is left out of the trust.
	CompileError string
}

func (p *Portal) deviceNewForm(w http.ResponseWriter, r *http.Request, u *user) error {
	if _, err := p.deviceService(); err != nil {
		return err
	}
	return p.ok(w, r, "device_new", &view{Title: "Add a device profile", Nav: "devices", User: u, Data: &deviceFormData{Form: newDeviceForm()}})
}

func (p *Portal) deviceCreate(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	f := parseDeviceForm(r)
	var s devices.Spec
	f.apply(&s)
	if len(f.Errors) > 0 {
		f.addProblems(s.Validate())
	} else {
		d, err := svc.Add(r.Context(), u.by(), s)
		switch {
		case err == nil:
			return redirect(w, r, devicePath(d.Name), "deviceadded")
		case errors.Is(err, store.ErrConflict):
			f.Errors["name"] = "a device profile with this name exists already"
		case !f.addProblems(err):
			return err
		}
	}
	p.render(w, r, http.StatusUnprocessableEntity, "device_new", &view{
		Title: "Add a device profile", Nav: "devices", User: u, Data: &deviceFormData{Form: f},
		Error: "The profile was not added: correct the fields marked below.",
	})
	return nil
}

func (p *Portal) deviceData(svc *devices.Service, d *store.DeviceProfile, f *deviceForm) *deviceFormData {
	out := &deviceFormData{Form: f, Profile: d, Anchors: anchorsOf(d.Anchors)}
	if err := svc.TrustErrors()[d.Name]; err != nil && d.Enabled {
		out.CompileError = err.Error()
	}
	return out
}

func (p *Portal) deviceDetail(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	d, err := svc.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return p.ok(w, r, "device", &view{Title: "Device profile " + d.Name, Nav: "devices", User: u, Data: p.deviceData(svc, d, deviceFormOf(d))})
}

func (p *Portal) deviceUpdate(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	ctx := r.Context()
	name := r.PathValue("name")
	f := parseDeviceForm(r)
	f.Name = name
	_, err = svc.Update(ctx, u.by(), name, func(s *devices.Spec) error {
		f.apply(s)
		if len(f.Errors) > 0 {
			f.addProblems(s.Validate())
			return errFormInvalid
		}
		return nil
	})
	switch {
	case err == nil:
		return redirect(w, r, devicePath(name), "deviceupd")
	case errors.Is(err, devices.ErrReadOnly):
		return &pageError{http.StatusConflict, err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return errNotFound
	case errors.Is(err, store.ErrConflict):
		f.Errors["general"] = err.Error()
	case errors.Is(err, errFormInvalid), f.addProblems(err):
	default:
		return err
	}
	d, err := svc.Get(ctx, name)
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusUnprocessableEntity, "device", &view{
		Title: "Device profile " + name, Nav: "devices", User: u, Data: p.deviceData(svc, d, f),
		Error: "The changes were not saved: correct the fields marked below.",
	})
	return nil
}

func (p *Portal) deviceStatus(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	var msg string
	switch r.PostFormValue("action") {
	case "enable":
		_, _, err = svc.Enable(r.Context(), u.by(), name)
		msg = "deviceenabled"
	case "disable":
		_, _, err = svc.Disable(r.Context(), u.by(), name)
		msg = "devicedisabled"
	default:
		return badRequest("Choose to enable or disable the profile.")
	}
	if errors.Is(err, devices.ErrReadOnly) {
		return &pageError{http.StatusConflict, err.Error()}
	}
	if err != nil {
		return err
	}
	return redirect(w, r, devicePath(name), msg)
}

func (p *Portal) deviceDelete(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if strings.TrimSpace(r.PostFormValue("confirm")) != name {
		return badRequest("The removal was not confirmed: type the profile's name.")
	}
	err = svc.Remove(r.Context(), u.by(), name)
	if errors.Is(err, devices.ErrReadOnly) {
		return &pageError{http.StatusConflict, err.Error()}
	}
	if err != nil {
		return err
	}
	return redirect(w, r, Path+"/devices", "deviceremoved")
}

// delegationGroup is one proxy's delegations on the list page.
type delegationGroup struct {
	Proxy   string
	Devices []store.Delegation
}

type delegationsData struct {
	Proxy, AccountID string
	Groups           []delegationGroup
	Count            int
	// Truncated: the list stops at its limit.
	Truncated bool
	Limit     int
}

// delegationPageLimit bounds the delegations one page lists.
const delegationPageLimit = 1000

func (p *Portal) delegationList(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d := &delegationsData{Proxy: strings.TrimSpace(q.Get("proxy")), AccountID: strings.TrimSpace(q.Get("account")), Limit: delegationPageLimit}
	ds, err := svc.ListDelegations(r.Context(), store.DelegationFilter{Proxy: d.Proxy, AccountID: d.AccountID, Limit: delegationPageLimit + 1})
	if err != nil {
		return err
	}
	if len(ds) > delegationPageLimit {
		ds, d.Truncated = ds[:delegationPageLimit], true
	}
	d.Count = len(ds)
	for _, x := range ds {
		if n := len(d.Groups); n == 0 || d.Groups[n-1].Proxy != x.Proxy {
			d.Groups = append(d.Groups, delegationGroup{Proxy: x.Proxy})
		}
		g := &d.Groups[len(d.Groups)-1]
		g.Devices = append(g.Devices, x)
	}
	return p.ok(w, r, "delegations", &view{Title: "Delegations", Nav: "devices", User: u, Data: d, Flash: importSummary(q)})
}

// undelegate removes one delegation from the list page.
func (p *Portal) delegationDelete(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	proxy := r.PostFormValue("proxy")
	dev := store.DeviceRef{FCCID: r.PostFormValue("fcc-id"), Serial: r.PostFormValue("serial")}
	err = svc.Undelegate(r.Context(), u.by(), proxy, dev)
	if errors.Is(err, store.ErrNotFound) {
		return &pageError{http.StatusNotFound, "There is no such delegation."}
	}
	if err != nil {
		return err
	}
	return redirect(w, r, delegationsPath(proxy), "undelegated")
}

type importData struct {
	Account *store.Account
	Proxy   string
	Error   *devices.ImportError
	// Problem is a message about the form (no file, a bad proxy).
	Problem string
}

// delegationImport imports a CSV of devices for an account (operators
// only): the multipart body is bounded by maxImportBody, the file by the
// service; every bad row is shown with its line and nothing is written.
func (p *Portal) delegationImport(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.deviceService()
	if err != nil {
		return err
	}
	a, err := p.accountOf(r, u)
	if err != nil {
		return err
	}
	d := &importData{Account: a, Proxy: strings.TrimSpace(r.PostFormValue("proxy"))}
	fail := func() error {
		p.render(w, r, http.StatusUnprocessableEntity, "device_import", &view{
			Title: "Import devices for " + a.Name, Nav: "accounts", User: u, Data: d,
			Error: "Nothing was imported.",
		})
		return nil
	}
	file, _, err := r.FormFile("file")
	if err != nil {
		d.Problem = "Choose a CSV file of fcc_id,serial rows."
		return fail()
	}
	defer file.Close()
	got, err := svc.ImportCSV(r.Context(), u.by(), a.ID, d.Proxy, io.Reader(file))
	var ie *devices.ImportError
	var probs devices.Problems
	switch {
	case errors.As(err, &ie):
		d.Error = ie
		return fail()
	case errors.As(err, &probs):
		d.Problem = probs.Error()
		return fail()
	case err != nil:
		return err
	}
	return redirect(w, r, delegationsPath(d.Proxy)+"&account="+url.QueryEscape(a.ID)+
		"&added="+strconv.Itoa(got.Added)+"&rows="+strconv.Itoa(got.Rows), "imported")
}

// importSummary is the list page's line after an import (numbers only
// from the URL).
func importSummary(q url.Values) string {
	rows, err1 := strconv.Atoi(q.Get("rows"))
	added, err2 := strconv.Atoi(q.Get("added"))
	if q.Get("msg") != "imported" || err1 != nil || err2 != nil {
		return ""
	}
	return fmt.Sprintf("%d devices imported: %d new, %d delegated already.", rows, added, rows-added)
}
