package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/store"
)

// KeyDeviceProfiles is the file's list of device trust profiles (issue
// 14). Like issuers, it has no flag nor environment variable.
const KeyDeviceProfiles = "device-profiles"

// DeviceProfileEntry is one entry of the file's device-profiles list. Its
// keys are the flag names of `sts device profile add` (lists in the
// plural); the anchors (a PEM file) are read when the file is loaded, and
// a relative anchors-file or crl-files path is taken from the
// configuration file's directory. CRL files are read by the server, and
// reread when they change.
type DeviceProfileEntry struct {
	Name        string            `yaml:"name"`
	Kind        string            `yaml:"kind"`
	AnchorsFile string            `yaml:"anchors-file"`
	Identity    string            `yaml:"identity"`
	EKU         string            `yaml:"eku"`
	CRLFiles    []string          `yaml:"crl-files"`
	OCSP        string            `yaml:"ocsp"`
	FCCIDs      []string          `yaml:"fcc-ids"`
	Audiences   []string          `yaml:"audiences"`
	Scopes      []string          `yaml:"scopes"`
	Condition   string            `yaml:"condition"`
	ScopeRule   string            `yaml:"scope-rule"`
	Claims      map[string]string `yaml:"claims"`
	TokenTTL    string            `yaml:"token-ttl"`
	MaxBatch    int               `yaml:"max-batch"`
}

// deviceSpecs turns the entries into devices.Specs and checks each
// (Spec.Validate), collecting every problem, each naming its profile and
// key. The profiles are compiled (CEL, anchors, CRL files) when `sts
// serve` applies them (devices.Service.ApplyConfig).
func deviceSpecs(entries []DeviceProfileEntry, dir string) ([]devices.Spec, []error) {
	var (
		specs []devices.Spec
		errs  []error
		seen  = map[string]bool{}
	)
	abs := func(path string) string {
		if path == "" || filepath.IsAbs(path) {
			return path
		}
		return filepath.Join(dir, path)
	}
	for n, e := range entries {
		who := fmt.Sprintf("%s: profile %q", KeyDeviceProfiles, e.Name)
		if e.Name == "" {
			who = fmt.Sprintf("%s: entry %d", KeyDeviceProfiles, n+1)
		}
		bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(who+": "+format, args...)) }
		if seen[e.Name] && e.Name != "" {
			bad("declared twice")
		}
		seen[e.Name] = true
		s := devices.Spec{
			Name: e.Name, Kind: e.Kind, Identity: e.Identity, EKU: e.EKU, OCSPURL: e.OCSP,
			FCCIDs: e.FCCIDs, Audiences: e.Audiences, Scopes: e.Scopes,
			Policy:   store.Policy{Condition: e.Condition, Scope: e.ScopeRule, Claims: e.Claims},
			MaxBatch: e.MaxBatch,
		}
		for _, f := range e.CRLFiles {
			s.CRLFiles = append(s.CRLFiles, abs(f))
		}
		if e.TokenTTL != "" {
			d, err := time.ParseDuration(e.TokenTTL)
			if err != nil {
				bad("token-ttl: %q is not a duration like 10m or 1h", e.TokenTTL)
			}
			s.TokenTTL = d
		}
		anchorsRead := false
		if e.AnchorsFile != "" {
			b, err := os.ReadFile(abs(e.AnchorsFile))
			if err != nil {
				bad("anchors-file: %v", err)
			} else {
				s.Anchors, anchorsRead = b, true
			}
		}
		var probs devices.Problems
		if err := s.Validate(); errors.As(err, &probs) {
			for _, p := range probs {
				if p.Field == "anchors" && e.AnchorsFile != "" && !anchorsRead {
					continue // reported above
				}
				bad("%s: %s", deviceConfigKey(p.Field), strings.ReplaceAll(p.Msg, "\n", "; "))
			}
		} else if err != nil {
			bad("%v", err)
		}
		specs = append(specs, s)
	}
	return specs, errs
}

// deviceConfigKey names the file's key of a problem's field.
func deviceConfigKey(field string) string {
	switch field {
	case "anchors":
		return "anchors-file"
	case "crl":
		return "crl-files"
	case "fcc-id":
		return "fcc-ids"
	case "audience", "scope":
		return field + "s"
	}
	if strings.HasPrefix(field, "claim ") {
		return "claims: " + strings.TrimPrefix(field, "claim ")
	}
	return field
}
