// Package config reads the server's settings from, in rising precedence,
// built-in defaults, an optional YAML file (--config / STS_CONFIG), STS_*
// environment variables and command-line flags. The file's keys are the
// flag names; unknown keys are errors, and Validate reports every problem
// at once. It also opens what the settings name: the store and the
// key-encryption key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/issuers"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Config is the validated configuration.
type Config struct {
	Addr   string
	Issuer string
	// IssuerDefault: no --issuer, STS_ISSUER or file setting named the
	// issuer; it is http(s)://ADDR. The CLI then uses the issuer the
	// server recorded in the database instead.
	IssuerDefault     bool
	DataDir           string
	DatabaseURL       string
	LogLevel          string
	LogFormat         string
	KeyAlgorithm      string
	KeyRotationPeriod time.Duration
	AccessTokenTTL    time.Duration
	RefreshTokenTTL   time.Duration
	MaxTokenTTL       time.Duration
	Leeway            time.Duration
	TLSCert           string
	TLSKey            string
	// ClientCA is the PEM bundle of CAs trusted for client certificates
	// (tls_client_auth); ClientCertHeader is the header in which the
	// trusted proxies forward the client certificate (URL-encoded PEM).
	ClientCA         string
	ClientCertHeader string
	// RequireApproval puts dynamically registered clients in the pending
	// state until an operator approves them.
	RequireApproval bool
	// DPoPNonce requires server-provided nonces in DPoP proofs (RFC 9449
	// §8), the same on every instance sharing the key-encryption key.
	DPoPNonce bool
	// IATMaxLifetime bounds the lifetime of initial access tokens.
	IATMaxLifetime time.Duration
	// IATRequiredClaims lists, per scope, the claims an IAT must carry to
	// register a client asking for that scope.
	IATRequiredClaims map[string][]string
	// SoftwareStatementPublishers maps trusted software-statement issuers
	// to JWK set files.
	SoftwareStatementPublishers map[string]string
	// RegistrationRate bounds registrations per account and per source
	// address, per minute.
	RegistrationRatePerAccount int
	RegistrationRatePerAddress int
	// AuthFailuresPerAddress and AuthFailuresPerClient bound failed
	// client authentications per minute, per source address and per
	// claimed client id.
	AuthFailuresPerAddress int
	AuthFailuresPerClient  int
	// DeviceBatchesPerMinute bounds each domain proxy's /token/batch
	// requests (issue 14).
	DeviceBatchesPerMinute int
	// AuditRetention is how long audit records are kept (0: forever).
	AuditRetention time.Duration
	// AuditJournal is AuditJournalAuto, On or Off: whether audit records
	// are acknowledged once in a local journal and applied to the
	// database in the background (internal/audit.Journal).
	AuditJournal string
	// AuditSync flushes the journal to the disk before each answer.
	AuditSync bool
	// VerifiedTokenCache is how many verified JWTs are remembered (0:
	// none; see token.VerifiedCache).
	VerifiedTokenCache int
	// MaxActDepth caps the depth of act chains in issued tokens.
	MaxActDepth int
	// RegistrationTokenTTL is the lifetime of RFC 7592 registration access
	// tokens; zero: they do not expire.
	RegistrationTokenTTL time.Duration
	// TrustedProxies are the hops whose X-Forwarded-For and Forwarded
	// headers are believed (every address-keyed limit and the audit use
	// the client address they name).
	TrustedProxies *clientip.Resolver
	// KeyEncryptionKey is the base64 KEK from STS_KEY_ENCRYPTION_KEY
	// (never a flag: argv is visible to every user of the machine).
	KeyEncryptionKey string
	// Issuers are the trusted issuers the file declares (its issuers
	// list), checked but for the existence of their clients; `sts serve`
	// applies them at start (issuers.Service.ApplyConfig).
	Issuers []issuers.Spec
	// DeviceProfiles are the device trust profiles the file declares
	// (its device-profiles list), checked but not compiled; `sts serve`
	// applies them at start (devices.Service.ApplyConfig).
	DeviceProfiles []devices.Spec

	// AdminAddr is the listen address of /metrics and /debug/pprof/;
	// empty: not served.
	AdminAddr string
}

// Flag names, which are also the YAML keys and, upper-cased with '-' as
// '_' and prefixed STS_, the environment variables.
const (
	FlagAddr              = "addr"
	FlagIssuer            = "issuer"
	FlagDataDir           = "data-dir"
	FlagDatabaseURL       = "database-url"
	FlagConfig            = "config"
	FlagLogLevel          = "log-level"
	FlagLogFormat         = "log-format"
	FlagKeyAlgorithm      = "key-algorithm"
	FlagKeyRotationPeriod = "key-rotation-period"
	FlagAccessTokenTTL    = "access-token-ttl"
	FlagRefreshTokenTTL   = "refresh-token-ttl"
	FlagMaxTokenTTL       = "max-token-ttl"
	FlagLeeway            = "leeway"
	FlagTLSCert           = "tls-cert"
	FlagTLSKey            = "tls-key"
	FlagClientCA          = "client-ca"
	FlagClientCertHeader  = "client-cert-header"
	FlagRequireApproval   = "require-approval"
	FlagDPoPNonce         = "dpop-nonce"
	FlagIATMaxLifetime    = "iat-max-lifetime"
	FlagIATRequiredClaims = "iat-required-claims"
	FlagPublishers        = "software-statement-publishers"
	FlagRateAccount       = "registration-rate-per-account"
	FlagRateAddress       = "registration-rate-per-address"
	FlagRegistrationTTL   = "registration-token-ttl"
	FlagTrustedProxies    = "trusted-proxies"
	FlagForwardedHeader   = "forwarded-header"
	FlagAuthFailAddress   = "auth-failure-rate-per-address"
	FlagAuthFailClient    = "auth-failure-rate-per-client"
	FlagDeviceBatchRate   = "device-batch-rate-per-proxy"
	FlagAuditRetention    = "audit-retention"
	FlagAuditJournal      = "audit-journal"
	FlagAuditSync         = "audit-sync"
	FlagVerifiedCache     = "verified-token-cache"
	FlagMaxActDepth       = "max-act-depth"
	FlagAdminAddr         = "admin-addr"
)

// Values of --audit-journal.
const (
	// AuditJournalAuto journals with SQLite (the journal sits in the data
	// directory beside the database, on the same disk) and not with
	// PostgreSQL (whose instances may have no disk of their own that
	// outlives them).
	AuditJournalAuto = "auto"
	AuditJournalOn   = "on"
	AuditJournalOff  = "off"
)

// JournalDir returns the audit journal's directory, or "" when audit
// records go straight to the database.
func (c *Config) JournalDir() string {
	if c.AuditJournal == AuditJournalOff || (c.AuditJournal != AuditJournalOn && c.DatabaseURL != "") {
		return ""
	}
	return filepath.Join(c.DataDir, "audit-journal")
}

// DefaultAuditRetention keeps audit records 90 days, a common minimum for
// security logs, after which they are deleted in the background.
const DefaultAuditRetention = 90 * 24 * time.Hour

// DefaultAddr is where `sts serve` listens with no configuration.
const DefaultAddr = "127.0.0.1:8080"

// DefaultRegistrationTokenTTL is how long a registration access token
// works: long enough for a device that rarely calls home, short enough
// that a copy that leaked and lay unused dies. Rotating the secret renews
// it.
const DefaultRegistrationTokenTTL = 90 * 24 * time.Hour

// RegisterStorage adds the flags every command needs to find the data:
// --data-dir, --database-url and --config.
func RegisterStorage(fs *pflag.FlagSet) {
	fs.String(FlagDataDir, "./sts-data", "directory of the embedded SQLite database and generated key-encryption key")
	fs.String(FlagDatabaseURL, "", "database URL (postgres://...); empty for SQLite in --data-dir")
	fs.String(FlagConfig, "", "YAML configuration file whose keys are these flag names")
	fs.String(FlagLogLevel, "info", "log level: debug, info, warn, error")
	fs.String(FlagLogFormat, "text", "log format: text or json")
}

// RegisterServe adds the flags of `sts serve` and of commands that need the
// token settings.
func RegisterServe(fs *pflag.FlagSet) {
	fs.String(FlagAddr, DefaultAddr, "listen address")
	fs.String(FlagIssuer, "", "issuer URL (default http://ADDR)")
	fs.String(FlagAdminAddr, "", "listen address of the admin listener (/metrics, /debug/pprof/), e.g. 127.0.0.1:9090; never the public one; off when empty")
	fs.String(FlagKeyAlgorithm, "ES256", "signing algorithm of new keys: ES256, EdDSA or RS256")
	fs.Duration(FlagKeyRotationPeriod, 30*24*time.Hour, "how long a key signs before it is rotated (0 disables)")
	fs.Duration(FlagAccessTokenTTL, time.Hour, "default access token lifetime")
	fs.Duration(FlagRefreshTokenTTL, 24*time.Hour, "default refresh token lifetime")
	fs.Duration(FlagMaxTokenTTL, 24*time.Hour, "longest lifetime of any signed token")
	fs.Duration(FlagLeeway, 30*time.Second, "clock-skew leeway on exp and nbf of presented tokens")
	fs.String(FlagTLSCert, "", "TLS certificate file (PEM); serve HTTPS when set")
	fs.String(FlagTLSKey, "", "TLS private key file (PEM)")
	fs.String(FlagClientCA, "", "CA certificates (PEM bundle) trusted for tls_client_auth client certificates")
	fs.String(FlagClientCertHeader, "", "header in which the trusted proxies forward the client certificate (URL-encoded PEM), e.g. X-Client-Cert")
	fs.Bool(FlagRequireApproval, false, "new dynamic registrations wait, pending, for an operator's approval")
	fs.Bool(FlagDPoPNonce, false, "require a server nonce (DPoP-Nonce) in DPoP proofs at the token endpoint")
	fs.Duration(FlagIATMaxLifetime, time.Hour, "longest lifetime of an initial access token")
	fs.String(FlagIATRequiredClaims, "", `claims an initial access token needs per requested scope: "scope=claim1,claim2 scope2=claim3"`)
	fs.String(FlagPublishers, "", `trusted software-statement issuers and their JWK set files: "issuer=path/to/jwks.json ..."`)
	fs.Int(FlagRateAccount, 30, "registrations per account per minute")
	fs.Int(FlagAuthFailAddress, 30, "failed client authentications per source address per minute before 429 (correct credentials always pass)")
	fs.Int(FlagAuthFailClient, 30, "failed client authentications per client id per minute before 429 (correct credentials always pass)")
	fs.Int(FlagDeviceBatchRate, 60, "a domain proxy's /token/batch requests per minute before 429 (each proxy its own budget)")
	fs.Duration(FlagAuditRetention, DefaultAuditRetention, "how long audit records are kept before background deletion (0 keeps them forever)")
	fs.String(FlagAuditJournal, AuditJournalAuto, "answer once an audit record is in a local journal, applied to the database in the background: auto (with SQLite), on or off")
	fs.Bool(FlagAuditSync, false, "flush the audit journal to the disk before answering (survives a power loss, not only a process kill)")
	fs.Int(FlagVerifiedCache, 0, "remember up to this many verified subject and actor JWTs, skipping their signature check when presented again (expiry and revocation are still checked); 0 turns it off")
	fs.Int(FlagMaxActDepth, 5, "longest delegation (act) chain an issued token may carry, on every path (1-32)")
	fs.Int(FlagRateAddress, 60, "registration requests without a valid token per source address per minute")
	fs.Duration(FlagRegistrationTTL, DefaultRegistrationTokenTTL, "lifetime of RFC 7592 registration access tokens (0: they never expire)")
	fs.String(FlagTrustedProxies, "", "load balancers and proxies (CIDR or address, comma-separated) whose forwarding header names the client")
	fs.String(FlagForwardedHeader, clientip.HeaderXFF, "the one header the trusted proxies write: X-Forwarded-For or Forwarded")
}

// ServerSetting is the annotation RegisterOnly puts on the flags it adds:
// they are server settings that a command passes on to the configuration,
// unlike command-local flags of the same name (`client create
// --access-token-ttl` is a client's setting).
const ServerSetting = "sts-server-setting"

// RegisterOnly adds to fs the named flags of RegisterServe, and no other,
// so that a command shows only the server settings it uses.
func RegisterOnly(fs *pflag.FlagSet, names ...string) {
	all := pflag.NewFlagSet("", pflag.ContinueOnError)
	RegisterServe(all)
	for _, n := range names {
		f := all.Lookup(n)
		if f == nil {
			panic("config: no server flag " + n)
		}
		fs.AddFlag(f)
		fs.SetAnnotation(n, ServerSetting, []string{"true"})
	}
}

// EnvName is the environment variable of a flag.
func EnvName(flag string) string {
	return "STS_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Load resolves every flag registered on fs: flag if set, else environment,
// else file, else default; then validates.
func Load(fs *pflag.FlagSet, getenv func(string) string) (*Config, error) {
	vals := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) { vals[f.Name] = f.DefValue })
	path := getenv(EnvName(FlagConfig))
	if f := fs.Lookup(FlagConfig); f != nil && f.Changed {
		path = f.Value.String()
	}
	var (
		entries    []IssuerEntry
		devEntries []DeviceProfileEntry
		errs       []error
	)
	if path != "" {
		file, is, ds, err := readFile(path)
		if file == nil {
			return nil, err
		}
		// A file that parsed, with problems in its issuers' or device
		// profiles' entries (unknown keys), is still checked whole: every
		// problem at once.
		if err != nil {
			errs = append(errs, err)
		}
		entries, devEntries = is, ds
		// Unknown keys, each with the nearest known one, in the file's
		// key order; the other settings are still checked.
		known := make([]string, 0, len(vals))
		for k := range vals {
			if k != FlagConfig {
				known = append(known, k)
			}
		}
		for _, k := range sortedKeys(file) {
			if _, ok := vals[k]; !ok || k == FlagConfig {
				errs = append(errs, fmt.Errorf("%s: unknown setting %q%s", path, k, didYouMean(k, append(known, KeyIssuers, KeyDeviceProfiles))))
				continue
			}
			vals[k] = file[k]
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			vals[f.Name] = f.Value.String()
		} else if v := getenv(EnvName(f.Name)); v != "" {
			vals[f.Name] = v
		}
	})
	c := &Config{KeyEncryptionKey: getenv("STS_KEY_ENCRYPTION_KEY")}
	if err := c.fill(vals); err != nil {
		errs = append(errs, err)
	}
	specs, issuerErrs := issuerSpecs(entries, filepath.Dir(path))
	c.Issuers = specs
	devSpecs, devErrs := deviceSpecs(devEntries, filepath.Dir(path))
	c.DeviceProfiles = devSpecs
	errs = append(errs, issuerErrs...)
	return c, errors.Join(append(errs, devErrs...)...)
}

// readFile reads the YAML file: its single-valued settings by key, and
// its issuers list, decoded strictly (an unknown key in an entry is an
// error, as a misspelt one would otherwise be ignored: a condition that
// is not applied is a hole).
func readFile(path string) (map[string]string, []IssuerEntry, []DeviceProfileEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, err
	}
	var doc struct {
		Issuers        []IssuerEntry        `yaml:"issuers"`
		DeviceProfiles []DeviceProfileEntry `yaml:"device-profiles"`
		Rest           map[string]any       `yaml:",inline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var unknownFields error
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		// Unknown keys in issuers' entries leave the rest decoded:
		// report them, with suggestions, beside every other problem.
		var te *yaml.TypeError
		if !errors.As(err, &te) || !onlyUnknownFields(te) {
			return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		unknownFields = unknownFieldErrors(path, te)
	}
	out := make(map[string]string, len(doc.Rest))
	for k, v := range doc.Rest {
		switch v.(type) {
		case map[string]any, []any:
			return nil, nil, nil, fmt.Errorf("%s: %s must be a single value", path, k)
		}
		out[k] = fmt.Sprint(v)
	}
	return out, doc.Issuers, doc.DeviceProfiles, unknownFields
}

// fill parses the resolved strings and validates them, collecting every
// problem.
func (c *Config) fill(v map[string]string) error {
	var errs []error
	dur := func(name string) time.Duration {
		s, ok := v[name]
		if !ok {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration like 90s or 1h", name, s))
		}
		return d
	}
	c.Addr = v[FlagAddr]
	c.Issuer = strings.TrimRight(v[FlagIssuer], "/")
	c.DataDir = v[FlagDataDir]
	c.DatabaseURL = v[FlagDatabaseURL]
	c.LogLevel = v[FlagLogLevel]
	c.LogFormat = v[FlagLogFormat]
	c.KeyAlgorithm = v[FlagKeyAlgorithm]
	c.KeyRotationPeriod = dur(FlagKeyRotationPeriod)
	c.AccessTokenTTL = dur(FlagAccessTokenTTL)
	c.RefreshTokenTTL = dur(FlagRefreshTokenTTL)
	c.MaxTokenTTL = dur(FlagMaxTokenTTL)
	c.Leeway = dur(FlagLeeway)
	c.TLSCert, c.TLSKey = v[FlagTLSCert], v[FlagTLSKey]
	c.ClientCA, c.ClientCertHeader = v[FlagClientCA], v[FlagClientCertHeader]
	if h := c.ClientCertHeader; h != "" {
		if !validHeaderName(h) {
			errs = append(errs, fmt.Errorf("%s: %q is not an HTTP header name", FlagClientCertHeader, h))
		} else if c.TrustedProxies == nil && v[FlagTrustedProxies] == "" {
			errs = append(errs, fmt.Errorf("%s needs %s: the header is believed only from trusted proxies", FlagClientCertHeader, FlagTrustedProxies))
		}
	}
	if b, ok := v[FlagRequireApproval]; ok {
		var err error
		if c.RequireApproval, err = strconv.ParseBool(b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not true or false", FlagRequireApproval, b))
		}
	}
	if b, ok := v[FlagDPoPNonce]; ok {
		var err error
		if c.DPoPNonce, err = strconv.ParseBool(b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not true or false", FlagDPoPNonce, b))
		}
	}
	c.IATMaxLifetime = dur(FlagIATMaxLifetime)
	c.AuditRetention = dur(FlagAuditRetention)
	c.AuditJournal = AuditJournalAuto
	if j, ok := v[FlagAuditJournal]; ok {
		switch j {
		case AuditJournalAuto, AuditJournalOn, AuditJournalOff:
			c.AuditJournal = j
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not auto, on or off", FlagAuditJournal, j))
		}
	}
	if s, ok := v[FlagVerifiedCache]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 10_000_000 {
			errs = append(errs, fmt.Errorf("%s: %q is not a number from 0 to 10000000", FlagVerifiedCache, s))
		}
		c.VerifiedTokenCache = n
	}
	if b, ok := v[FlagAuditSync]; ok {
		var err error
		if c.AuditSync, err = strconv.ParseBool(b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not true or false", FlagAuditSync, b))
		}
	}
	c.MaxActDepth = 5
	if s, ok := v[FlagMaxActDepth]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 32 {
			errs = append(errs, fmt.Errorf("%s: %q is not a number from 1 to 32", FlagMaxActDepth, s))
		}
		c.MaxActDepth = n
	}
	c.RegistrationTokenTTL = dur(FlagRegistrationTTL)
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{FlagRateAccount, &c.RegistrationRatePerAccount}, {FlagRateAddress, &c.RegistrationRatePerAddress},
		{FlagAuthFailAddress, &c.AuthFailuresPerAddress}, {FlagAuthFailClient, &c.AuthFailuresPerClient},
		{FlagDeviceBatchRate, &c.DeviceBatchesPerMinute},
	} {
		if s, ok := v[f.name]; ok {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive number", f.name, s))
			}
			*f.dst = n
		}
	}
	if s := v[FlagIATRequiredClaims]; s != "" {
		c.IATRequiredClaims = map[string][]string{}
		for _, kv := range strings.Fields(s) {
			scope, claims, ok := strings.Cut(kv, "=")
			if !ok || scope == "" || claims == "" {
				errs = append(errs, fmt.Errorf("%s: %q is not scope=claim1,claim2", FlagIATRequiredClaims, kv))
				continue
			}
			c.IATRequiredClaims[scope] = strings.Split(claims, ",")
		}
	}
	if s := v[FlagPublishers]; s != "" {
		c.SoftwareStatementPublishers = map[string]string{}
		for _, kv := range strings.Fields(s) {
			iss, file, ok := strings.Cut(kv, "=")
			if !ok || iss == "" || file == "" {
				errs = append(errs, fmt.Errorf("%s: %q is not issuer=jwks-file", FlagPublishers, kv))
				continue
			}
			c.SoftwareStatementPublishers[iss] = file
		}
	}

	if s, ok := v[FlagTrustedProxies]; ok {
		var err error
		if c.TrustedProxies, err = clientip.Parse(s); err != nil {
			errs = append(errs, err)
		} else if h, ok := v[FlagForwardedHeader]; ok {
			if c.TrustedProxies, err = c.TrustedProxies.WithHeader(h); err != nil {
				errs = append(errs, err)
			}
		}
	}

	if c.AdminAddr = v[FlagAdminAddr]; c.AdminAddr != "" {
		if _, port, err := net.SplitHostPort(c.AdminAddr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", FlagAdminAddr, c.AdminAddr))
		} else if n, err := strconv.Atoi(port); err != nil {
			errs = append(errs, fmt.Errorf("%s: port %q is not a number", FlagAdminAddr, port))
		} else if n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("%s: port %d is not from 0 to 65535", FlagAdminAddr, n))
		} else if c.AdminAddr == v[FlagAddr] && n != 0 {
			errs = append(errs, fmt.Errorf("%s: must differ from %s: metrics and profiles are never on the public port", FlagAdminAddr, FlagAddr))
		}
	}
	if _, ok := v[FlagAddr]; ok {
		if _, port, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("addr: %q is not host:port", c.Addr))
		} else if n, err := strconv.Atoi(port); err != nil {
			errs = append(errs, fmt.Errorf("addr: port %q is not a number", port))
		} else if n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("addr: port %d is not from 0 to 65535", n))
		}
		if c.Issuer == "" {
			c.IssuerDefault = true
			scheme := "http"
			if c.TLSCert != "" {
				scheme = "https"
			}
			c.Issuer = scheme + "://" + c.Addr
		}
		if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			// RFC 8414 §2: an https URL with no query or fragment; http is
			// tolerated for local use.
			errs = append(errs, fmt.Errorf("issuer: %q must be an http(s) URL without query or fragment", c.Issuer))
		}
		switch c.KeyAlgorithm {
		case "ES256", "EdDSA", "RS256":
		default:
			errs = append(errs, fmt.Errorf("key-algorithm: %q is not ES256, EdDSA or RS256", c.KeyAlgorithm))
		}
		if (c.TLSCert == "") != (c.TLSKey == "") {
			errs = append(errs, errors.New("tls-cert and tls-key go together"))
		}
		if c.AccessTokenTTL <= 0 || c.MaxTokenTTL <= 0 || c.RefreshTokenTTL <= 0 {
			errs = append(errs, errors.New("token lifetimes must be positive"))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log-format: %q is not text or json", c.LogFormat))
	}
	if c.DatabaseURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: empty (and no database-url)"))
	}
	return errors.Join(errs...)
}

// validHeaderName reports whether s is an RFC 9110 field name (a token).
func validHeaderName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return s != ""
}

// KEKPath is where a generated key-encryption key is kept.
func (c *Config) KEKPath() string { return filepath.Join(c.DataDir, "kek") }

// SQLitePath is the embedded database file.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "sts.db") }
