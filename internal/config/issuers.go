package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/issuers"
	"github.com/keybridge/sts/internal/store"
)

// KeyIssuers is the file's list of trusted issuers. It has no flag nor
// environment variable: a list of structured entries is a file's job.
const KeyIssuers = "issuers"

// IssuerEntry is one entry of the file's issuers list. Its keys are the
// flag names of `sts issuer add` (lists in the plural); the issuer URL,
// an argument there, is the issuer key here. Files named by jwks-file and
// introspection-client-secret-file are read when the file is loaded; a
// relative path is taken from the configuration file's directory.
type IssuerEntry struct {
	Name                          string            `yaml:"name"`
	Issuer                        string            `yaml:"issuer"`
	JWKSURI                       string            `yaml:"jwks-uri"`
	JWKSFile                      string            `yaml:"jwks-file"`
	IntrospectionEndpoint         string            `yaml:"introspection-endpoint"`
	IntrospectionClientID         string            `yaml:"introspection-client-id"`
	IntrospectionClientSecretFile string            `yaml:"introspection-client-secret-file"`
	TokenTypes                    []string          `yaml:"token-types"`
	Algorithms                    []string          `yaml:"algorithms"`
	Audiences                     []string          `yaml:"audiences"`
	MaxAge                        string            `yaml:"max-age"`
	Leeway                        string            `yaml:"leeway"`
	Clients                       []string          `yaml:"clients"`
	SubjectPrefix                 *string           `yaml:"subject-prefix"`
	Subject                       string            `yaml:"subject"`
	Condition                     string            `yaml:"condition"`
	ScopeRule                     string            `yaml:"scope-rule"`
	Claims                        map[string]string `yaml:"claims"`
	AllowHTTP                     bool              `yaml:"allow-http"`
}

// issuerSpecs turns the entries into issuers.Specs and checks each
// (Spec.Validate: syntax, URLs, keys, CEL rules), collecting every
// problem, each naming its issuer. Whether the clients exist is checked
// when the issuers are applied (issuers.Service.ApplyConfig), against the
// database.
func issuerSpecs(entries []IssuerEntry, dir string) ([]issuers.Spec, []error) {
	var (
		specs []issuers.Spec
		errs  []error
		seen  = map[string]bool{}
	)
	for n, e := range entries {
		who := fmt.Sprintf("%s: issuer %q", KeyIssuers, e.Name)
		if e.Name == "" {
			who = fmt.Sprintf("%s: entry %d", KeyIssuers, n+1)
		}
		bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(who+": "+format, args...)) }
		if seen[e.Name] && e.Name != "" {
			bad("declared twice")
		}
		seen[e.Name] = true
		s := issuers.Spec{
			Name: e.Name, Issuer: e.Issuer, JWKSURI: e.JWKSURI,
			IntrospectionEndpoint: e.IntrospectionEndpoint, IntrospectionClientID: e.IntrospectionClientID,
			TokenTypes: e.TokenTypes, Algorithms: e.Algorithms, Audiences: e.Audiences, Clients: e.Clients,
			SubjectPrefix: e.SubjectPrefix,
			Policy:        store.Policy{Condition: e.Condition, Scope: e.ScopeRule, Claims: e.Claims, Subject: e.Subject},
			AllowHTTP:     e.AllowHTTP,
		}
		dur := func(key, v string) (time.Duration, bool) {
			if v == "" {
				return 0, false
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				bad("%s: %q is not a duration like 90s or 10m", key, v)
				return 0, false
			}
			return d, true
		}
		s.MaxAge, _ = dur("max-age", e.MaxAge)
		if d, ok := dur("leeway", e.Leeway); ok {
			s.Leeway = &d
		}
		read := func(key, path string) []byte {
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				bad("%s: %v", key, err)
				return nil
			}
			if b == nil {
				b = []byte{}
			}
			return b
		}
		if e.JWKSFile != "" {
			// Unreadable (reported by read) or empty: never taken for
			// "no key option", which would mean discovery.
			s.JWKS = read("jwks-file", e.JWKSFile)
			if s.JWKS != nil && len(s.JWKS) == 0 {
				bad("jwks-file: %s is empty", e.JWKSFile)
			}
		}
		if e.IntrospectionClientSecretFile != "" {
			s.IntrospectionClientSecret = strings.TrimRight(string(read("introspection-client-secret-file", e.IntrospectionClientSecretFile)), "\r\n")
		}
		var probs issuers.Problems
		if err := s.Validate(); errors.As(err, &probs) {
			for _, p := range probs {
				msg := strings.ReplaceAll(p.Msg, "\n", "; ")
				if p.Field == "policy" {
					// celpolicy's errors name the issuer and the rule.
					errs = append(errs, fmt.Errorf("%s: %s", KeyIssuers, msg))
					continue
				}
				bad("%s: %s", configKey(p.Field), msg)
			}
		} else if err != nil {
			bad("%v", err)
		}
		specs = append(specs, s)
	}
	return specs, errs
}

// configKey names the file's key of a problem's field.
func configKey(field string) string {
	switch field {
	case "jwks":
		return "jwks-file"
	case "token-type", "algorithm", "audience", "client":
		return field + "s"
	case "introspection-client-secret":
		return "introspection-client-secret-file"
	}
	return field
}
