package devicecert

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// MaxCRLSize bounds a CRL file read from disk. A CA of a million
// devices revoking one in a hundred writes a CRL of about 400 KB.
const MaxCRLSize = 32 << 20

// crlCheckEvery is how often Verify looks whether a CRL file changed.
const crlCheckEvery = time.Second

// crlFile is one configured CRL file, reloaded when it changes: another
// file renamed over it (how CRL updaters should write), or a change of
// its modification time or size. (A file rewritten in place twice within
// the file system's timestamp granularity, a few milliseconds, with the
// same size, would go unnoticed: write a new file and rename it.)
type crlFile struct {
	path string

	mu      sync.Mutex
	checked time.Time // when the file was last looked at
	stat    os.FileInfo
	list    *x509.RevocationList
	revoked map[string]bool // serial numbers' big-endian bytes
	// sigOK caches the issuers (SHA-256 of their DER) whose key signed
	// the list: it is checked once per issuer, not per request.
	sigOK map[[32]byte]bool
	// lastErr is the last reload failure (nil after a good one), kept
	// for the operator; the previous list stays in use. A new list of
	// another issuer than the first one loaded is such a failure.
	lastErr error
}

// loadCRL reads and parses path (DER or PEM).
func loadCRL(path string) (*crlFile, error) {
	f := &crlFile{path: path}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := f.load(st); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *crlFile) load(st os.FileInfo) error {
	if st.Size() > MaxCRLSize {
		return fmt.Errorf("%s is larger than %d bytes", f.path, MaxCRLSize)
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	der := data
	if blk, _ := pem.Decode(data); blk != nil {
		if blk.Type != "X509 CRL" {
			return fmt.Errorf("%s: a PEM block of type %q, not X509 CRL", f.path, blk.Type)
		}
		der = blk.Bytes
	} else if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		return fmt.Errorf("%s: malformed PEM", f.path)
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if f.list != nil && !bytes.Equal(list.RawIssuer, f.list.RawIssuer) {
		// The file is configured for one CA: a list of another would
		// leave that CA's certificates unchecked without a word.
		return fmt.Errorf("%s: the new CRL's issuer %s is not the previous one's, %s", f.path, dnString(list.RawIssuer), dnString(f.list.RawIssuer))
	}
	revoked := make(map[string]bool, len(list.RevokedCertificateEntries))
	for _, e := range list.RevokedCertificateEntries {
		revoked[string(e.SerialNumber.Bytes())+signOf(e.SerialNumber.Sign())] = true
	}
	f.list, f.revoked, f.sigOK = list, revoked, nil
	f.stat = st
	return nil
}

func signOf(s int) string {
	if s < 0 {
		return "-"
	}
	return ""
}

// refresh reloads the file if it changed, at most once per crlCheckEvery
// of wall, the real clock (not the request's time, which a test may hold
// still). A failure keeps the previous list and is remembered.
func (f *crlFile) refresh(wall time.Time) {
	if d := wall.Sub(f.checked); d >= 0 && d < crlCheckEvery {
		return
	}
	f.checked = wall
	st, err := os.Stat(f.path)
	if err != nil {
		f.lastErr = err
		return
	}
	if os.SameFile(st, f.stat) && st.ModTime().Equal(f.stat.ModTime()) && st.Size() == f.stat.Size() {
		return
	}
	f.lastErr = f.load(st)
}

// crlVerdict is what the configured CRLs say of one certificate.
type crlVerdict int

const (
	crlNone    crlVerdict = iota // no CRL of its issuer is configured
	crlGood                      // a current CRL of its issuer does not list it
	crlRevoked                   // a CRL of its issuer lists it
	crlStale                     // the freshest CRL of its issuer is past its nextUpdate
	crlBadSig                    // a CRL names its issuer but is not signed by its key
)

// checkCRLs looks c (issued by issuer) up in the CRLs that issuer
// published: those whose issuer name is c's issuer and, when both carry
// key identifiers, whose authority key identifier is issuer's subject key
// identifier (a re-keyed CA keeps its name). A CRL past its nextUpdate
// still revokes what it lists. now is the request's time, wall the real
// clock's (for reloads).
func checkCRLs(files []*crlFile, c, issuer *x509.Certificate, now, wall time.Time) crlVerdict {
	verdict := crlNone
	serial := string(c.SerialNumber.Bytes()) + signOf(c.SerialNumber.Sign())
	for _, f := range files {
		f.mu.Lock()
		f.refresh(wall)
		list := f.list
		if !bytes.Equal(list.RawIssuer, c.RawIssuer) ||
			(len(list.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(list.AuthorityKeyId, issuer.SubjectKeyId)) {
			f.mu.Unlock()
			continue
		}
		key := sha256.Sum256(issuer.Raw)
		if !f.sigOK[key] {
			if err := list.CheckSignatureFrom(issuer); err != nil {
				f.mu.Unlock()
				return crlBadSig
			}
			if f.sigOK == nil {
				f.sigOK = make(map[[32]byte]bool)
			}
			f.sigOK[key] = true
		}
		revoked := f.revoked[serial]
		f.mu.Unlock()
		if revoked {
			return crlRevoked
		}
		switch {
		case list.NextUpdate.IsZero() || !now.After(list.NextUpdate):
			verdict = crlGood
		case verdict == crlNone:
			verdict = crlStale
		}
	}
	return verdict
}

// errNoCRL is returned by CRLStatus for a path that is not configured.
var errNoCRL = errors.New("no such CRL file in the profile")

// CRLStatus reports on the profile's CRL file path: the list in use
// (its thisUpdate and nextUpdate) and the last reload failure, if any,
// for an operator's status page.
func (p *Profile) CRLStatus(path string) (thisUpdate, nextUpdate time.Time, reloadErr error, err error) {
	for _, f := range p.crls {
		if f.path == path {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.list.ThisUpdate, f.list.NextUpdate, f.lastErr, nil
		}
	}
	return time.Time{}, time.Time{}, nil, errNoCRL
}
