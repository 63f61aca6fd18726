package sqlrows

import (
	"encoding/json"
	"fmt"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// ClientValues returns c's columns in ClientCols order.
func ClientValues(c *store.Client) []any {
	return []any{
		c.ID, c.Name, sqlcodec.EncBytes(c.SecretHash), sqlcodec.EncBytes(c.PrevSecretHash),
		sqlcodec.EncTime(c.PrevSecretExpiresAt), string(c.Status), sqlcodec.EncList(c.GrantTypes),
		sqlcodec.EncList(c.Audiences), sqlcodec.EncList(c.Scopes), c.TokenFormat,
		sqlcodec.EncBool(c.AllowImpersonation), sqlcodec.EncDuration(c.AccessTokenTTL),
		sqlcodec.EncDuration(c.RefreshTokenTTL), sqlcodec.EncTime(c.CreatedAt), sqlcodec.EncTime(c.UpdatedAt),
		c.AccountID, c.AuthMethod, c.SoftwareID, c.SoftwareVersion, c.HardwareAddress,
		sqlcodec.EncBytes(c.RegistrationTokenHash), sqlcodec.EncBytes(c.Metadata), c.Identity,
		sqlcodec.EncList(c.Resources), sqlcodec.EncBool(c.ExchangeAny), sqlcodec.EncBool(c.IntrospectAny),
		sqlcodec.EncBytes(c.IATClaims), sqlcodec.EncTime(c.RegistrationTokenExpiresAt),
		EncPolicy(c.Policy), EncBinding(c.Binding),
	}
}

// ScanClient reads a row of ClientCols.
func ScanClient(row Scanner) (*store.Client, error) {
	var (
		c                                 store.Client
		status, grants, auds, scopes      string
		prevExp, created, updated         int64
		impersonation, accessTTL, refTTL  int64
		resources                         string
		exchangeAny, introspectAny, rtExp int64
		policy, binding                   string
	)
	err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &c.PrevSecretHash, &prevExp,
		&status, &grants, &auds, &scopes, &c.TokenFormat, &impersonation,
		&accessTTL, &refTTL, &created, &updated, &c.AccountID, &c.AuthMethod,
		&c.SoftwareID, &c.SoftwareVersion, &c.HardwareAddress,
		&c.RegistrationTokenHash, &c.Metadata, &c.Identity,
		&resources, &exchangeAny, &introspectAny, &c.IATClaims, &rtExp, &policy, &binding)
	if err != nil {
		return nil, err
	}
	c.Status = store.ClientStatus(status)
	if c.GrantTypes, err = sqlcodec.DecList(grants); err != nil {
		return nil, err
	}
	if c.Audiences, err = sqlcodec.DecList(auds); err != nil {
		return nil, err
	}
	if c.Scopes, err = sqlcodec.DecList(scopes); err != nil {
		return nil, err
	}
	if c.Resources, err = sqlcodec.DecList(resources); err != nil {
		return nil, err
	}
	if c.Policy, err = DecPolicy(policy); err != nil {
		return nil, err
	}
	if c.Binding, err = DecBinding(binding); err != nil {
		return nil, err
	}
	c.ExchangeAny = sqlcodec.DecBool(exchangeAny)
	c.IntrospectAny = sqlcodec.DecBool(introspectAny)
	c.RegistrationTokenExpiresAt = sqlcodec.DecTime(rtExp)
	c.PrevSecretExpiresAt = sqlcodec.DecTime(prevExp)
	c.AllowImpersonation = sqlcodec.DecBool(impersonation)
	c.AccessTokenTTL = sqlcodec.DecDuration(accessTTL)
	c.RefreshTokenTTL = sqlcodec.DecDuration(refTTL)
	c.CreatedAt = sqlcodec.DecTime(created)
	c.UpdatedAt = sqlcodec.DecTime(updated)
	return &c, nil
}

// UpdateArgs returns the arguments of an Update query (UpdateClient,
// UpdateAccount, UpdateOperator) from a record's values: every column but
// the first, the key, then the key of the row to update.
func UpdateArgs(values []any, key string) []any {
	return append(values[1:], key)
}

// AccountValues returns a's columns in AccountCols order.
func AccountValues(a *store.Account) []any {
	return []any{
		a.ID, string(a.Kind), a.Name, string(a.Status), sqlcodec.EncBytes(a.SharedSecret),
		sqlcodec.EncList(a.Audiences), sqlcodec.EncList(a.Scopes),
		sqlcodec.EncTime(a.CreatedAt), sqlcodec.EncTime(a.UpdatedAt),
	}
}

// ScanAccount reads a row of AccountCols.
func ScanAccount(row Scanner) (*store.Account, error) {
	var (
		a                store.Account
		kind, status     string
		auds, scopes     string
		created, updated int64
	)
	if err := row.Scan(&a.ID, &kind, &a.Name, &status, &a.SharedSecret, &auds, &scopes, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if a.Audiences, err = sqlcodec.DecList(auds); err != nil {
		return nil, err
	}
	if a.Scopes, err = sqlcodec.DecList(scopes); err != nil {
		return nil, err
	}
	a.Kind = store.AccountKind(kind)
	a.Status = store.AccountStatus(status)
	a.CreatedAt = sqlcodec.DecTime(created)
	a.UpdatedAt = sqlcodec.DecTime(updated)
	return &a, nil
}

// TokenValues returns t's columns in TokenCols order.
func TokenValues(t *store.TokenRecord) []any {
	return []any{
		t.Hash, string(t.Kind), t.JTI, t.ClientID, t.Subject, t.Scope,
		sqlcodec.EncList(t.Audience), sqlcodec.EncBytes(t.Actor), t.FamilyID, sqlcodec.EncTime(t.IssuedAt),
		sqlcodec.EncTime(t.ExpiresAt), sqlcodec.EncTime(t.RevokedAt), sqlcodec.EncTime(t.ConsumedAt),
		sqlcodec.EncBytes(t.Cnf),
	}
}

// ScanToken reads a row of TokenCols.
func ScanToken(row Scanner) (*store.TokenRecord, error) {
	var (
		t                                  store.TokenRecord
		kind, aud                          string
		issued, expires, revoked, consumed int64
	)
	err := row.Scan(&t.Hash, &kind, &t.JTI, &t.ClientID, &t.Subject, &t.Scope,
		&aud, &t.Actor, &t.FamilyID, &issued, &expires, &revoked, &consumed, &t.Cnf)
	if err != nil {
		return nil, err
	}
	t.Kind = store.TokenKind(kind)
	if t.Audience, err = sqlcodec.DecList(aud); err != nil {
		return nil, err
	}
	t.IssuedAt = sqlcodec.DecTime(issued)
	t.ExpiresAt = sqlcodec.DecTime(expires)
	t.RevokedAt = sqlcodec.DecTime(revoked)
	t.ConsumedAt = sqlcodec.DecTime(consumed)
	return &t, nil
}

// KeyValues returns k's columns in KeyCols order.
func KeyValues(k *store.SigningKey) []any {
	return []any{
		k.ID, k.Algorithm, string(k.State), sqlcodec.EncBytes(k.PrivateKey),
		sqlcodec.EncBytes(k.PublicKey), sqlcodec.EncTime(k.CreatedAt), sqlcodec.EncTime(k.ActivatedAt),
		sqlcodec.EncTime(k.RetiredAt), sqlcodec.EncTime(k.ExpiresAt),
	}
}

// ScanKey reads a row of KeyCols.
func ScanKey(row Scanner) (*store.SigningKey, error) {
	var (
		k                                    store.SigningKey
		state                                string
		created, activated, retired, expires int64
	)
	err := row.Scan(&k.ID, &k.Algorithm, &state, &k.PrivateKey, &k.PublicKey,
		&created, &activated, &retired, &expires)
	if err != nil {
		return nil, err
	}
	k.State = store.KeyState(state)
	k.CreatedAt = sqlcodec.DecTime(created)
	k.ActivatedAt = sqlcodec.DecTime(activated)
	k.RetiredAt = sqlcodec.DecTime(retired)
	k.ExpiresAt = sqlcodec.DecTime(expires)
	return &k, nil
}

// OperatorValues returns o's columns in OperatorCols order.
func OperatorValues(o *store.Operator) []any {
	return []any{o.Username, o.PasswordHash, sqlcodec.EncTime(o.CreatedAt), sqlcodec.EncTime(o.UpdatedAt)}
}

// ScanOperator reads a row of OperatorCols.
func ScanOperator(row Scanner) (*store.Operator, error) {
	var (
		o                store.Operator
		created, updated int64
	)
	if err := row.Scan(&o.Username, &o.PasswordHash, &created, &updated); err != nil {
		return nil, err
	}
	o.CreatedAt = sqlcodec.DecTime(created)
	o.UpdatedAt = sqlcodec.DecTime(updated)
	return &o, nil
}

// CertificateValues returns c's columns in CertCols order.
func CertificateValues(c *store.Certificate) []any {
	return []any{
		c.ID, c.AccountID, sqlcodec.EncBytes(c.DER), sqlcodec.EncBytes(c.PrivateKey),
		sqlcodec.EncTime(c.NotBefore), sqlcodec.EncTime(c.NotAfter), sqlcodec.EncTime(c.CreatedAt),
	}
}

// ScanCertificate reads a row of CertCols.
func ScanCertificate(row Scanner) (*store.Certificate, error) {
	var (
		c                          store.Certificate
		notBefore, notAfter, added int64
	)
	if err := row.Scan(&c.ID, &c.AccountID, &c.DER, &c.PrivateKey, &notBefore, &notAfter, &added); err != nil {
		return nil, err
	}
	c.NotBefore = sqlcodec.DecTime(notBefore)
	c.NotAfter = sqlcodec.DecTime(notAfter)
	c.CreatedAt = sqlcodec.DecTime(added)
	return &c, nil
}

// SessionValues returns ss's columns in SessionCols order.
func SessionValues(ss *store.Session) []any {
	return []any{ss.Hash, ss.Subject, ss.CSRF, sqlcodec.EncTime(ss.CreatedAt), sqlcodec.EncTime(ss.ExpiresAt)}
}

// ScanSession reads a row of SessionCols.
func ScanSession(row Scanner) (*store.Session, error) {
	var (
		ss               store.Session
		created, expires int64
	)
	if err := row.Scan(&ss.Hash, &ss.Subject, &ss.CSRF, &created, &expires); err != nil {
		return nil, err
	}
	ss.CreatedAt = sqlcodec.DecTime(created)
	ss.ExpiresAt = sqlcodec.DecTime(expires)
	return &ss, nil
}

// AuditValues returns r's columns in AuditCols order after the id, every
// field within its cap (audit.Bound): whoever writes the record, a caller
// cannot make one row large.
func AuditValues(rec *store.AuditRecord) []any {
	r := audit.Bound(*rec)
	return BoundAuditValues(&r)
}

// BoundAuditValues is AuditValues of a record already bounded, with its
// chain, seq and hash.
func BoundAuditValues(r *store.AuditRecord) []any {
	return []any{
		sqlcodec.EncTime(r.Time), r.Action, r.Decision, r.ClientID, r.AccountID, r.Subject,
		r.Actor, sqlcodec.EncList(r.Audience), r.JTI, r.Error, r.Detail, r.RequestID, r.Remote,
		r.Count, r.TraceID, r.Chain, r.Seq, r.Hash,
	}
}

// AuditChainValues returns c's columns in AuditChainCols order.
func AuditChainValues(c *store.AuditChain) []any {
	return []any{c.Name, c.Version, c.Seq, c.Hash, c.AnchorSeq, c.AnchorHash,
		sqlcodec.EncTime(c.CreatedAt), sqlcodec.EncTime(c.UpdatedAt)}
}

// ScanAuditChain reads a row of AuditChainCols.
func ScanAuditChain(row Scanner) (store.AuditChain, error) {
	var (
		c                store.AuditChain
		created, updated int64
	)
	err := row.Scan(&c.Name, &c.Version, &c.Seq, &c.Hash, &c.AnchorSeq, &c.AnchorHash, &created, &updated)
	c.CreatedAt, c.UpdatedAt = sqlcodec.DecTime(created), sqlcodec.DecTime(updated)
	return c, err
}

// ScanAudit reads a row of AuditCols.
func ScanAudit(row Scanner) (store.AuditRecord, error) {
	var (
		r   store.AuditRecord
		t   int64
		aud string
	)
	err := row.Scan(&r.ID, &t, &r.Action, &r.Decision, &r.ClientID, &r.AccountID,
		&r.Subject, &r.Actor, &aud, &r.JTI, &r.Error, &r.Detail, &r.RequestID, &r.Remote, &r.Count, &r.TraceID,
		&r.Chain, &r.Seq, &r.Hash)
	if err != nil {
		return r, err
	}
	r.Time = sqlcodec.DecTime(t)
	r.Audience, err = sqlcodec.DecList(aud)
	return r, err
}

// ScanRevocation reads a row of RevocationCols.
func ScanRevocation(row Scanner) (store.Revocation, error) {
	var (
		r       store.Revocation
		exp, at int64
	)
	if err := row.Scan(&r.JTI, &exp, &at); err != nil {
		return r, err
	}
	r.ExpiresAt, r.RevokedAt = sqlcodec.DecTime(exp), sqlcodec.DecTime(at)
	return r, nil
}

// EncPolicy is the column of a store.Policy: its JSON text, or "" when it
// has no rule (the column's default, so that rows written before the
// column existed read as no policy).
func EncPolicy(p store.Policy) string {
	if p.IsZero() {
		return ""
	}
	b, err := json.Marshal(p)
	if err != nil {
		// A struct of strings and a map of strings always marshals.
		panic(err)
	}
	return string(b)
}

// EncBinding is the column of a store.Binding: its JSON text, or "" when
// it registers nothing (the column's default).
func EncBinding(b store.Binding) string {
	if b.IsZero() {
		return ""
	}
	out, err := json.Marshal(b)
	if err != nil {
		// Strings, booleans and bytes always marshal.
		panic(err)
	}
	return string(out)
}

// DecBinding reads a column written by EncBinding.
func DecBinding(s string) (store.Binding, error) {
	var b store.Binding
	if s == "" {
		return b, nil
	}
	if err := json.Unmarshal([]byte(s), &b); err != nil {
		return b, fmt.Errorf("binding column: %w", err)
	}
	return b, nil
}

// DecPolicy reads a column written by EncPolicy.
func DecPolicy(s string) (store.Policy, error) {
	var p store.Policy
	if s == "" {
		return p, nil
	}
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, fmt.Errorf("policy column: %w", err)
	}
	if len(p.Claims) == 0 {
		p.Claims = nil
	}
	return p, nil
}

// IssuerValues returns i's columns in IssuerCols order.
func IssuerValues(i *store.TrustedIssuer) []any {
	return []any{
		i.Name, i.Issuer, sqlcodec.EncBool(i.Enabled), i.Source, i.JWKSURI, sqlcodec.EncBytes(i.JWKS),
		i.IntrospectionEndpoint, i.IntrospectionClientID, i.IntrospectionClientSecret,
		sqlcodec.EncList(i.TokenTypes), sqlcodec.EncList(i.Algorithms), sqlcodec.EncList(i.Audiences),
		sqlcodec.EncDuration(i.MaxAge), sqlcodec.EncDuration(i.Leeway), sqlcodec.EncList(i.Clients),
		i.SubjectPrefix, EncPolicy(i.Policy), sqlcodec.EncBool(i.AllowHTTP),
		sqlcodec.EncTime(i.CreatedAt), sqlcodec.EncTime(i.UpdatedAt),
	}
}

// ScanIssuer reads a row of IssuerCols.
func ScanIssuer(row Scanner) (*store.TrustedIssuer, error) {
	var (
		i                          store.TrustedIssuer
		enabled, allowHTTP         int64
		types, algs, auds, clients string
		maxAge, leeway             int64
		policy                     string
		created, updated           int64
	)
	err := row.Scan(&i.Name, &i.Issuer, &enabled, &i.Source, &i.JWKSURI, &i.JWKS,
		&i.IntrospectionEndpoint, &i.IntrospectionClientID, &i.IntrospectionClientSecret,
		&types, &algs, &auds, &maxAge, &leeway, &clients, &i.SubjectPrefix, &policy,
		&allowHTTP, &created, &updated)
	if err != nil {
		return nil, err
	}
	for _, l := range []struct {
		dst *[]string
		src string
	}{{&i.TokenTypes, types}, {&i.Algorithms, algs}, {&i.Audiences, auds}, {&i.Clients, clients}} {
		if *l.dst, err = sqlcodec.DecList(l.src); err != nil {
			return nil, err
		}
	}
	if i.Policy, err = DecPolicy(policy); err != nil {
		return nil, err
	}
	i.Enabled = sqlcodec.DecBool(enabled)
	i.AllowHTTP = sqlcodec.DecBool(allowHTTP)
	i.MaxAge = sqlcodec.DecDuration(maxAge)
	i.Leeway = sqlcodec.DecDuration(leeway)
	i.CreatedAt = sqlcodec.DecTime(created)
	i.UpdatedAt = sqlcodec.DecTime(updated)
	return &i, nil
}

// DeviceProfileValues returns p's columns in DeviceProfileCols order.
func DeviceProfileValues(p *store.DeviceProfile) []any {
	return []any{
		p.Name, p.Kind, sqlcodec.EncBytes(p.Anchors), p.Identity, p.EKU,
		sqlcodec.EncList(p.CRLFiles), p.OCSPURL, sqlcodec.EncList(p.FCCIDs),
		sqlcodec.EncList(p.Audiences), sqlcodec.EncList(p.Scopes), EncPolicy(p.Policy),
		sqlcodec.EncDuration(p.TokenTTL), int64(p.MaxBatch), sqlcodec.EncBool(p.Enabled),
		sqlcodec.EncBool(p.FromConfig), sqlcodec.EncTime(p.CreatedAt), sqlcodec.EncTime(p.UpdatedAt),
	}
}

// ScanDeviceProfile reads a row of DeviceProfileCols.
func ScanDeviceProfile(row Scanner) (*store.DeviceProfile, error) {
	var (
		p                             store.DeviceProfile
		crls, fccs, auds, scopes, pol string
		ttl, maxBatch, enabled, cfg   int64
		created, updated              int64
	)
	err := row.Scan(&p.Name, &p.Kind, &p.Anchors, &p.Identity, &p.EKU, &crls, &p.OCSPURL,
		&fccs, &auds, &scopes, &pol, &ttl, &maxBatch, &enabled, &cfg, &created, &updated)
	if err != nil {
		return nil, err
	}
	for _, l := range []struct {
		dst *[]string
		src string
	}{{&p.CRLFiles, crls}, {&p.FCCIDs, fccs}, {&p.Audiences, auds}, {&p.Scopes, scopes}} {
		if *l.dst, err = sqlcodec.DecList(l.src); err != nil {
			return nil, err
		}
	}
	if p.Policy, err = DecPolicy(pol); err != nil {
		return nil, err
	}
	p.TokenTTL = sqlcodec.DecDuration(ttl)
	p.MaxBatch = int(maxBatch)
	p.Enabled = sqlcodec.DecBool(enabled)
	p.FromConfig = sqlcodec.DecBool(cfg)
	p.CreatedAt = sqlcodec.DecTime(created)
	p.UpdatedAt = sqlcodec.DecTime(updated)
	return &p, nil
}

// DelegationValues returns d's columns in DelegationCols order.
func DelegationValues(d *store.Delegation) []any {
	return []any{d.Proxy, d.FCCID, d.Serial, d.AccountID, sqlcodec.EncTime(d.CreatedAt)}
}

// ScanDelegation reads a row of DelegationCols.
func ScanDelegation(row Scanner) (store.Delegation, error) {
	var (
		d       store.Delegation
		created int64
	)
	if err := row.Scan(&d.Proxy, &d.FCCID, &d.Serial, &d.AccountID, &created); err != nil {
		return d, err
	}
	d.CreatedAt = sqlcodec.DecTime(created)
	return d, nil
}
