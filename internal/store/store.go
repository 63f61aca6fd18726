package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors returned by every backend.
var (
	// ErrNotFound: no record has the given key.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a record with the same key exists, or a compare-and-swap
	// found a state other than the one expected.
	ErrConflict = errors.New("store: conflict")
	// ErrTokenReplayed: a refresh token that was already used was presented
	// again; its whole family has been revoked.
	ErrTokenReplayed = errors.New("store: refresh token replayed")
	// ErrTokenInactive: the token is expired or revoked.
	ErrTokenInactive = errors.New("store: token inactive")
)

// Store is everything a backend provides.
type Store interface {
	Clients
	Keys
	Tokens
	Revocations
	Audit
	AuditStats
	Accounts
	Certificates
	UsedJTIs
	Operators
	Sessions
	Settings
	Issuers
	Devices
	// Close releases the backend's resources.
	Close() error
}

// ClientStatus is the lifecycle state of a client.
type ClientStatus string

// Client states. Only active clients may authenticate.
const (
	ClientActive   ClientStatus = "active"
	ClientPending  ClientStatus = "pending"
	ClientDisabled ClientStatus = "disabled"
)

// Token formats a client may receive access tokens in.
const (
	TokenFormatJWT    = "jwt"
	TokenFormatOpaque = "opaque"
)

// Client is a registered OAuth client and what it may obtain.
type Client struct {
	ID   string
	Name string
	// SecretHash is the keyed hash of the current secret.
	SecretHash []byte
	// PrevSecretHash is the hash of the secret before the last rotation,
	// accepted until PrevSecretExpiresAt.
	PrevSecretHash      []byte
	PrevSecretExpiresAt time.Time
	Status              ClientStatus
	// GrantTypes the client may use at the token endpoint.
	GrantTypes []string
	// Audiences are the audience and resource values the client may obtain
	// tokens for.
	Audiences []string
	// Scopes the client may obtain.
	Scopes []string
	// TokenFormat is TokenFormatJWT or TokenFormatOpaque for access tokens.
	TokenFormat string
	// AllowImpersonation lets the client exchange a subject token without an
	// actor token for a token that carries no act claim (RFC 8693 §1.1).
	AllowImpersonation bool
	// AccessTokenTTL and RefreshTokenTTL are lifetimes; zero means the
	// server default.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	CreatedAt       time.Time
	UpdatedAt       time.Time

	// AccountID is the account the client belongs to; empty for clients an
	// operator created outside any account.
	AccountID string
	// AuthMethod is the registered token_endpoint_auth_method
	// (client_secret_basic or client_secret_post); empty accepts both.
	AuthMethod string
	// SoftwareID, SoftwareVersion and HardwareAddress identify the client
	// software and device (RFC 7591 §2 and Key Bridge's extension);
	// re-registration of the same identity updates the same client.
	SoftwareID      string
	SoftwareVersion string
	HardwareAddress string
	// Identity is the registration identity within its account
	// (software_id + hardware_address, else client_name), set for
	// dynamically registered clients; unique per account when not empty,
	// so that instances sharing a database cannot register one identity
	// twice.
	Identity string
	// RegistrationTokenHash is the SHA-256 hash of the RFC 7592
	// registration access token.
	RegistrationTokenHash []byte
	// Metadata is the JSON of the other registered client metadata
	// (client_name, contacts, jwks, jwks_uri, extended_parameters, ...),
	// echoed by the registration endpoints.
	Metadata []byte

	// Resources are the resource URIs this client serves as a resource
	// server: a token whose audience names one of them is addressed to
	// this client, which may then exchange and introspect it.
	Resources []string
	// ExchangeAny is an operator's grant: the client may exchange subject
	// tokens that were neither issued to it nor addressed to it.
	ExchangeAny bool
	// IntrospectAny is an operator's grant: the client is a resource
	// server entitled to introspect every token (RFC 7662 §2.1).
	IntrospectAny bool
	// IATClaims is the JSON object of the claims of the initial access
	// tokens that registered the client which --iat-required-claims asked
	// for (the identity is Identity), compared on every re-registration.
	IATClaims []byte
	// RegistrationTokenExpiresAt is when the RFC 7592 registration access
	// token stops working; zero when none was recorded: never without a
	// token lifetime, else one lifetime after UpdatedAt (tokens stored
	// before expiry was; see clients.Registry.RegistrationTokenExpiresAt).
	RegistrationTokenExpiresAt time.Time
	// Policy holds the operator's CEL rules for this client's exchanges
	// (never set by registration: a client does not write its own
	// policy). Policy.Subject is not used for clients.
	Policy Policy
	// Binding is how the client proves possession of a key: its
	// certificate's registered names, its public keys, and whether its
	// tokens are bound to its certificate or DPoP key (RFC 8705, RFC 9449,
	// RFC 7523).
	Binding Binding
}

// Binding holds a client's key-based authentication and token-binding
// registration (RFC 8705 §2 and §3.4, RFC 9449 §5.2, RFC 7591 §2). The
// store keeps it as one JSON column; an empty Binding is a secret-only
// client with bearer tokens.
type Binding struct {
	// TLSSubjectDN, TLSSANDNS, TLSSANURI, TLSSANIP and TLSSANEmail are
	// the RFC 8705 §2.1.2 metadata of a tls_client_auth client: exactly
	// one is set, and the certificate must match it.
	TLSSubjectDN string `json:"tls_client_auth_subject_dn,omitempty"`
	TLSSANDNS    string `json:"tls_client_auth_san_dns,omitempty"`
	TLSSANURI    string `json:"tls_client_auth_san_uri,omitempty"`
	TLSSANIP     string `json:"tls_client_auth_san_ip,omitempty"`
	TLSSANEmail  string `json:"tls_client_auth_san_email,omitempty"`
	// JWKS is the client's public JSON Web Key Set (RFC 7591 jwks), for
	// self_signed_tls_client_auth and private_key_jwt; JWKSURI is where it
	// is fetched instead (RFC 7591 jwks_uri). At most one is set.
	JWKS    []byte `json:"jwks,omitempty"`
	JWKSURI string `json:"jwks_uri,omitempty"`
	// TLSBoundTokens binds the client's access tokens to its certificate
	// (RFC 8705 tls_client_certificate_bound_access_tokens).
	TLSBoundTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	// DPoPBoundTokens requires a DPoP proof on every token request of the
	// client (RFC 9449 §5.2 dpop_bound_access_tokens).
	DPoPBoundTokens bool `json:"dpop_bound_access_tokens,omitempty"`
}

// IsZero reports whether b registers nothing.
func (b Binding) IsZero() bool {
	return b.TLSSubjectDN == "" && b.TLSSANDNS == "" && b.TLSSANURI == "" && b.TLSSANIP == "" &&
		b.TLSSANEmail == "" && len(b.JWKS) == 0 && b.JWKSURI == "" && !b.TLSBoundTokens && !b.DPoPBoundTokens
}

// Policy is a set of CEL rules (github.com/google/cel-go) an operator
// attaches to a trusted issuer or a client; empty strings are absent
// rules. The store keeps them as text; internal/celpolicy compiles and
// evaluates them.
type Policy struct {
	// Condition must evaluate to true for a token to be issued.
	Condition string `json:"condition,omitempty"`
	// Scope evaluates to the list of scopes that may be issued; the
	// issued scope is bounded by it (as by the client's scopes).
	Scope string `json:"scope,omitempty"`
	// Claims maps a claim name of the issued token to the expression of
	// its value. Reserved claims (iss, sub, aud, ...) are refused.
	Claims map[string]string `json:"claims,omitempty"`
	// Subject (trusted issuers only) evaluates to the issued subject
	// before the issuer's SubjectPrefix; empty means the upstream sub.
	Subject string `json:"subject,omitempty"`
}

// IsZero reports whether p has no rule.
func (p Policy) IsZero() bool {
	return p.Condition == "" && p.Scope == "" && len(p.Claims) == 0 && p.Subject == ""
}

// Sources of a trusted issuer.
const (
	// IssuerSourceStore: managed with the CLI or the portal.
	IssuerSourceStore = "store"
	// IssuerSourceConfig: declared in the configuration file, applied at
	// start; read-only elsewhere.
	IssuerSourceConfig = "config"
)

// TrustedIssuer is another issuer whose tokens this server accepts as
// subject or actor tokens (RFC 8693) and as JWT bearer assertions
// (RFC 7523), under the issuer's rules.
type TrustedIssuer struct {
	// Name is the operator's short name for the issuer, unique, of
	// lower-case letters, digits and '-' (at most 63); the default
	// SubjectPrefix is Name + ":".
	Name string
	// Issuer is the exact "iss" value of its tokens; unique.
	Issuer  string
	Enabled bool
	// Source is IssuerSourceStore or IssuerSourceConfig.
	Source string
	// JWKSURI is where its keys are fetched. With JWKSURI and JWKS both
	// empty, the keys come through discovery (OpenID Connect Discovery,
	// then RFC 8414 metadata) of Issuer.
	JWKSURI string
	// JWKS is a static JSON Web Key Set (air-gapped issuers).
	JWKS []byte
	// IntrospectionEndpoint, with its client credentials, validates the
	// issuer's opaque access tokens (RFC 7662).
	IntrospectionEndpoint     string
	IntrospectionClientID     string
	IntrospectionClientSecret string
	// TokenTypes are the accepted token type URNs: id_token, jwt,
	// access_token (oauth.TokenType*).
	TokenTypes []string
	// Algorithms are the accepted JWS algorithms (asymmetric only).
	Algorithms []string
	// Audiences: an upstream token must carry at least one of them in aud.
	Audiences []string
	// MaxAge, when not zero, refuses tokens issued (iat) longer ago.
	MaxAge time.Duration
	// Leeway tolerated on exp, nbf and iat for clock skew.
	Leeway time.Duration
	// Clients are the ids of the clients that may present its tokens;
	// "*" allows every client.
	Clients []string
	// SubjectPrefix is prepended to the issued subject, so that two
	// issuers' equal sub values stay distinct subjects.
	SubjectPrefix string
	// Policy holds the issuer's CEL rules, Subject included.
	Policy Policy
	// AllowHTTP permits plain http:// fetches to hosts other than
	// loopback (never the default).
	AllowHTTP bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Issuers stores trusted issuers.
type Issuers interface {
	// CreateIssuer inserts i; ErrConflict if its Name or Issuer exists.
	CreateIssuer(ctx context.Context, i *TrustedIssuer) error
	// GetIssuer returns the issuer named name, or ErrNotFound.
	GetIssuer(ctx context.Context, name string) (*TrustedIssuer, error)
	// ListIssuers returns every trusted issuer ordered by name.
	ListIssuers(ctx context.Context) ([]*TrustedIssuer, error)
	// UpdateIssuer applies update inside a transaction, like
	// UpdateClient; ErrNotFound if absent. A change of Issuer that
	// collides with another is ErrConflict.
	UpdateIssuer(ctx context.Context, name string, update func(*TrustedIssuer) error) (*TrustedIssuer, error)
	// DeleteIssuer removes one; ErrNotFound if absent.
	DeleteIssuer(ctx context.Context, name string) error
}

// Clients stores registered clients.
type Clients interface {
	// CreateClient inserts c; ErrConflict if its ID exists, or if another
	// client of its account has its Identity (when not empty).
	CreateClient(ctx context.Context, c *Client) error
	// GetClient returns the client or ErrNotFound.
	GetClient(ctx context.Context, id string) (*Client, error)
	// ListClients returns all clients ordered by creation time.
	ListClients(ctx context.Context) ([]*Client, error)
	// ListAccountClients returns the clients of one account, ordered by
	// creation time.
	ListAccountClients(ctx context.Context, accountID string) ([]*Client, error)
	// FindClientByIdentity returns the client of the account whose Identity
	// is identity, or ErrNotFound (always when identity is empty).
	FindClientByIdentity(ctx context.Context, accountID, identity string) (*Client, error)
	// UpdateClient applies update to the stored client inside a transaction
	// and stores the result; an error from update aborts and is returned.
	// ErrNotFound if there is no such client; ErrConflict if the result
	// has the Identity of another client of its account.
	UpdateClient(ctx context.Context, id string, update func(*Client) error) (*Client, error)
	// DeleteClient removes the client; ErrNotFound if absent.
	DeleteClient(ctx context.Context, id string) error
}

// KeyState is the lifecycle state of a signing key.
type KeyState string

// Key states: a next key is published but does not sign yet; the current
// key signs; a retired key is published until ExpiresAt so that tokens it
// signed can still be verified.
const (
	KeyNext    KeyState = "next"
	KeyCurrent KeyState = "current"
	KeyRetired KeyState = "retired"
)

// SigningKey is a token-signing key pair.
type SigningKey struct {
	ID        string // the JWS "kid"
	Algorithm string // ES256, EdDSA or RS256
	State     KeyState
	// PrivateKey is the encrypted private key; the store never sees it in
	// the clear.
	PrivateKey []byte
	// PublicKey is the public JWK in JSON.
	PublicKey   []byte
	CreatedAt   time.Time
	ActivatedAt time.Time // when it became current; zero while next
	RetiredAt   time.Time // when it stopped signing; zero until retired
	// ExpiresAt is when a retired key is removed from the JWKS.
	ExpiresAt time.Time
}

// Keys stores signing keys.
type Keys interface {
	// ListKeys returns the keys that are next, current, or retired and not
	// yet expired at now, newest first.
	ListKeys(ctx context.Context, now time.Time) ([]*SigningKey, error)
	// RotateKeys atomically: retires the current key (if any) with
	// ExpiresAt retiredUntil, makes the next key (if any) current, and
	// inserts each of add as given. It fails with ErrConflict unless the
	// current key's ID is expectCurrent ("" meaning there is none), so that
	// two concurrent rotations cannot both succeed.
	RotateKeys(ctx context.Context, expectCurrent string, now, retiredUntil time.Time, add ...*SigningKey) error
	// DeleteExpiredKeys removes retired keys whose ExpiresAt is before now.
	DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error)
}

// TokenKind tells opaque access tokens from refresh tokens.
type TokenKind string

// Kinds of stored tokens.
const (
	TokenAccess  TokenKind = "access"
	TokenRefresh TokenKind = "refresh"
)

// TokenRecord is an opaque token the server issued, keyed by the SHA-256
// hash of the token; the token itself is never stored.
type TokenRecord struct {
	Hash     []byte
	Kind     TokenKind
	JTI      string
	ClientID string
	Subject  string
	Scope    string
	Audience []string
	// Actor is the JSON "act" claim of the grant, or nil.
	Actor []byte
	// FamilyID groups a refresh token with the tokens issued from it.
	FamilyID  string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// RevokedAt is set once the token is revoked.
	RevokedAt time.Time
	// ConsumedAt is set once a refresh token has been exchanged for its
	// successor.
	ConsumedAt time.Time
	// Cnf is the JSON "cnf" claim (RFC 7800) binding the token to a
	// certificate or DPoP key, or nil for a bearer token.
	Cnf []byte
}

// Tokens stores opaque access tokens and refresh tokens.
type Tokens interface {
	// CreateToken inserts t; ErrConflict if its hash exists.
	CreateToken(ctx context.Context, t *TokenRecord) error
	// GetToken returns the record with this hash, whatever its state, or
	// ErrNotFound.
	GetToken(ctx context.Context, hash []byte) (*TokenRecord, error)
	// RotateRefreshToken atomically consumes the refresh token oldHash and
	// inserts next. If the old token was already consumed, it revokes its
	// whole family as RevokeFamily does (in the same transaction) and
	// returns ErrTokenReplayed; if it is revoked or expired
	// at now, ErrTokenInactive; if absent, ErrNotFound.
	RotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, next *TokenRecord) error
	// RevokeToken marks one token revoked; ErrNotFound if absent.
	RevokeToken(ctx context.Context, hash []byte, now time.Time) error
	// RevokeFamily revokes every token of a refresh family: it marks the
	// family's stored tokens revoked and, in the same transaction, records
	// the revocation FamilyRevocation(familyID) at now until the latest
	// expiry of the family's stored tokens, so that the family's JWTs,
	// which are not stored, are refused too (no token of a family outlives
	// its stored tokens: each is capped by the token it came from). A
	// family without stored tokens, or "", records nothing. A family's
	// child families (ids familyID + FamilySeparator + ...) are revoked
	// with it; a child's revocation leaves its parent alone.
	RevokeFamily(ctx context.Context, familyID string, now time.Time) error
	// DeleteExpiredTokens removes tokens that expired before now.
	DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error)
}

// Revocation is a revoked JWT identifier, or a revoked refresh family.
type Revocation struct {
	// JTI is a jti, or FamilyRevocation(family id).
	JTI       string
	ExpiresAt time.Time // when the JWT (or the family) expires and the entry may go
	RevokedAt time.Time
}

// FamilyRevocation is the key under which RevokeFamily records a revoked
// refresh family among the revocations. A jti this server issues never
// contains ":", so the two kinds of key cannot collide.
func FamilyRevocation(familyID string) string { return "family:" + familyID }

// FamilySeparator joins a family id and the id of a child family: what
// another client derives from a family's token starts a child family, so
// that revoking (or replaying) the child's tokens leaves the parent's
// client alone, while revoking the parent revokes the child too.
const FamilySeparator = "."

// FamilyLineage returns the ids a token of family id belongs to, the
// root first: "a.b.c" → "a", "a.b", "a.b.c".
func FamilyLineage(id string) []string {
	if id == "" {
		return nil
	}
	var out []string
	for i := 0; i < len(id); i++ {
		if id[i] == FamilySeparator[0] {
			out = append(out, id[:i])
		}
	}
	return append(out, id)
}

// Revocations stores the identifiers (jti) of revoked JWTs, and the
// revoked refresh families (FamilyRevocation), until the tokens expire.
type Revocations interface {
	// RevokeJTI records jti as revoked at now until expiresAt; revoking
	// twice is not an error (the later expiry is kept).
	RevokeJTI(ctx context.Context, jti string, expiresAt, now time.Time) error
	// ListRevocations returns the entries revoked at or after since that
	// have not expired before now, so that an in-memory copy can be loaded
	// (since zero) and kept in sync.
	ListRevocations(ctx context.Context, since, now time.Time) ([]Revocation, error)
	// IsRevoked reports whether jti (or a FamilyRevocation key) was
	// revoked.
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// DeleteExpiredRevocations removes entries whose JWT expired before now.
	DeleteExpiredRevocations(ctx context.Context, now time.Time) (int, error)
}

// RevocationVisitor is an optional interface of a [Revocations]: the
// entries ListRevocations returns, visited one at a time without building
// the list, for a reader of millions of them (store/cached loading its set
// at start, where the list alone would take some 90 MB per million).
type RevocationVisitor interface {
	// EachRevocation calls each for every entry ListRevocations(ctx,
	// since, now) returns, in the same order, stopping at the first error.
	EachRevocation(ctx context.Context, since, now time.Time, each func(Revocation) error) error
}

// Seeder fills a database with many synthetic rows at once, for the scale
// benchmarks (`sts bench seed`): multi-row INSERTs in large transactions,
// far faster than one CreateClient or RevokeJTI per row. It is optional: a
// backend that has it implements it beside [Store]. The rows it writes are
// not announced on a [ChangeFeed]; running servers see seeded revocations
// at their next poll (store/cached Sync), and seeded clients when first
// asked for them.
type Seeder interface {
	// SeedClients creates n clients, copies of template whose ID is
	// template.ID followed by the row's index, zero-padded to seven
	// digits (template.ID+"0000000", …), and whose Name and Identity are
	// made unique the same way when set. It fails with ErrConflict if one
	// of the IDs exists.
	SeedClients(ctx context.Context, n int, template *Client) error
	// SeedRevocations records n revocations of random JWT identifiers
	// (16 random bytes, base64url, as token.NewID makes them) revoked at
	// now and expiring at expiresAt.
	SeedRevocations(ctx context.Context, n int, expiresAt, now time.Time) error
}

// AuditRecord is one audited decision: every issuance and every refusal.
type AuditRecord struct {
	ID        int64
	Time      time.Time
	Action    string // e.g. "token.exchange", "token.revoke", "client.create"
	Decision  string // "granted" or "refused"
	ClientID  string
	AccountID string
	Subject   string
	Actor     string
	Audience  []string
	JTI       string
	Error     string // the OAuth error code of a refusal
	Detail    string // human-readable reason; never a secret or token
	RequestID string
	Remote    string
	// TraceID is the W3C trace id of the request, when it was traced
	// (32 lowercase hex digits); "" otherwise.
	TraceID string
	// Count is how many identical refusals this record stands for: repeated
	// refusals from one source are coalesced into one record (at least 1).
	Count int
	// Chain, Seq and Hash place the record in its hash chain
	// (internal/audit.ChainHash). The store sets them as it appends the
	// record and ignores them on input, like ID; Chain is "" for a record
	// written before the audit trail was chained.
	Chain string
	Seq   int64
	Hash  string
}

// AuditChain is one hash chain of audit records: the records a store
// appends, each with the next Seq and the hash of the one before. Its head
// is updated in the transaction that appends, and its anchor in the one
// that prunes (retention).
type AuditChain struct {
	Name    string
	Version int // of the hash's encoding (internal/audit.ChainVersion)
	// Seq and Hash are the head: the last record appended ("" none yet).
	Seq  int64
	Hash string
	// AnchorSeq and AnchorHash are the last record pruned by retention
	// (0 and "" when none was): the next record's predecessor.
	AnchorSeq  int64
	AnchorHash string
	CreatedAt  time.Time
	// UpdatedAt is the time of the last append.
	UpdatedAt time.Time
}

// Audit decisions.
const (
	DecisionGranted = "granted"
	DecisionRefused = "refused"
)

// AuditFilter selects audit records; zero fields match everything.
type AuditFilter struct {
	ClientID  string
	AccountID string
	// Action matches records whose action equals it or starts with it
	// followed by a dot ("client" matches "client.create").
	Action string
	Since  time.Time
	Until  time.Time
	// Limit caps the number of records (newest first); zero means 100.
	Limit int
}

// Audit is an append-only log of decisions; records leave it only through
// retention (DeleteAuditBefore).
type Audit interface {
	// AppendAudit stores the records in one transaction.
	AppendAudit(ctx context.Context, recs []AuditRecord) error
	// ListAudit returns matching records, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
	// DeleteAuditBefore deletes the records whose time is before before
	// (audit retention) and returns how many it deleted. It works in
	// small batches, each its own transaction, so that it never holds a
	// lock for long; a record at or after before is never deleted. Of a
	// chain it deletes the longest run of records from the oldest on
	// (in Seq order) whose time is before before, and anchors the chain
	// on the last of them in the same transaction: a record that follows
	// a younger one in its chain stays until that one goes. It prunes
	// nothing of a chain whose records about to go do not verify. A chain
	// with no record left and no append since before is retired (its
	// head row deleted).
	DeleteAuditBefore(ctx context.Context, before time.Time) (int, error)
	// VisitAudit calls each for every record f selects, oldest first
	// (time, then append order), f.Limit ignored, streaming: for exports
	// of any size.
	VisitAudit(ctx context.Context, f AuditFilter, each func(*AuditRecord) error) error
	// AuditChains lists the hash chains by name.
	AuditChains(ctx context.Context) ([]AuditChain, error)
	// AuditChain returns chain name, or ErrNotFound.
	AuditChain(ctx context.Context, name string) (*AuditChain, error)
	// AuditChainRecords returns up to limit records of chain whose Seq is
	// greater than after, in Seq order.
	AuditChainRecords(ctx context.Context, chain string, after int64, limit int) ([]AuditRecord, error)
	// AuditUnchained counts the records written before chaining (legacy)
	// and returns the first (lowest id) record outside every chain that is
	// not one of them: without a chain yet written after chaining began,
	// or in a chain the store does not know (nil if none).
	AuditUnchained(ctx context.Context) (legacy int64, stray *AuditRecord, err error)
}

// AuditStatsQuery selects what [AuditStats] counts: the records of the
// given actions whose time is in [Since, Until).
type AuditStatsQuery struct {
	Since, Until time.Time
	// Bucket is the width of the time buckets (at least a second); the
	// buckets start at multiples of it since the Unix epoch.
	Bucket time.Duration
	// Actions are the actions counted (exact matches); none counts none.
	Actions []string
	// TopReasons and TopClients cap the refusal reasons and clients
	// returned (the most frequent first); zero returns none.
	TopReasons, TopClients int
}

// AuditBucket counts the decisions of one time bucket.
type AuditBucket struct {
	Start            time.Time
	Granted, Refused int64
}

// AuditCount counts the decisions of one key: a client id, or the OAuth
// error code of refusals.
type AuditCount struct {
	Key              string
	Granted, Refused int64
}

// AuditSummary is what AuditStats counted. Counts are of decisions, not
// rows: a record that stands for n coalesced refusals counts n.
type AuditSummary struct {
	// Buckets are the buckets that have records, oldest first.
	Buckets []AuditBucket
	// Reasons count refusals by their error code, most first.
	Reasons []AuditCount
	// Clients count decisions by client id, busiest first.
	Clients []AuditCount
}

// AuditStats aggregates the audit log for the portal's dashboard.
type AuditStats interface {
	// AuditStats counts the decisions q selects by time bucket, refusal
	// reason and client, with aggregate queries over the audit time
	// index: its cost grows with the records in the window, so callers
	// bound the window and cache the answer.
	AuditStats(ctx context.Context, q AuditStatsQuery) (*AuditSummary, error)
}

// AuditCheckpointer is implemented by stores that can append audit records
// and record how far a writer's journal has been applied in the same
// transaction, so that replaying the journal after a crash neither loses
// nor repeats a record (internal/audit.Journal).
type AuditCheckpointer interface {
	// AppendAuditCheckpoint stores recs and the setting (name, value) in
	// one transaction.
	AppendAuditCheckpoint(ctx context.Context, recs []AuditRecord, checkpoint *Setting) error
}

// AccountKind tells individual accounts from organizations.
type AccountKind string

// Account kinds.
const (
	AccountIndividual   AccountKind = "individual"
	AccountOrganization AccountKind = "organization"
)

// AccountStatus is the lifecycle state of an account. Only active accounts
// may register clients.
type AccountStatus string

// Account states.
const (
	AccountActive    AccountStatus = "active"
	AccountSuspended AccountStatus = "suspended"
	AccountClosed    AccountStatus = "closed"
)

// Account owns clients. An individual account signs its initial access
// tokens with a shared secret (HS256); an organization with the private key
// of one of its X.509 certificates.
type Account struct {
	ID     string
	Kind   AccountKind
	Name   string
	Status AccountStatus
	// SharedSecret is the individual account's HS256 key, encrypted under
	// the key-encryption key (it must be usable, so it is not hashed).
	SharedSecret []byte
	// Audiences and Scopes bound what the account's clients may be
	// registered for; empty means no bound beyond the server's.
	Audiences []string
	Scopes    []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Accounts stores accounts.
type Accounts interface {
	// CreateAccount inserts a; ErrConflict if its ID exists.
	CreateAccount(ctx context.Context, a *Account) error
	// GetAccount returns the account or ErrNotFound.
	GetAccount(ctx context.Context, id string) (*Account, error)
	// ListAccounts returns all accounts ordered by creation time.
	ListAccounts(ctx context.Context) ([]*Account, error)
	// UpdateAccount applies update inside a transaction, like UpdateClient.
	UpdateAccount(ctx context.Context, id string, update func(*Account) error) (*Account, error)
}

// Certificate is an X.509 certificate of an organization account whose key
// signs the organization's initial access tokens.
type Certificate struct {
	// ID is the certificate's SHA-256 thumbprint, base64url (the JWS
	// x5t#S256 value), also accepted as kid.
	ID        string
	AccountID string
	// DER is the certificate.
	DER []byte
	// PrivateKey is the encrypted PKCS #8 key of a certificate this server
	// issued (so that it can sign IATs for the organization); nil for an
	// uploaded certificate.
	PrivateKey []byte
	NotBefore  time.Time
	NotAfter   time.Time
	CreatedAt  time.Time
}

// Certificates stores organization certificates.
type Certificates interface {
	// AddCertificate inserts c; ErrConflict if the same certificate exists.
	AddCertificate(ctx context.Context, c *Certificate) error
	// ListCertificates returns an account's certificates, newest first.
	ListCertificates(ctx context.Context, accountID string) ([]*Certificate, error)
	// DeleteCertificate removes one; ErrNotFound if absent.
	DeleteCertificate(ctx context.Context, accountID, id string) error
}

// UsedJTIs records the identifiers of single-use tokens (initial access
// tokens, software statements if required) so that each is accepted once.
type UsedJTIs interface {
	// ConsumeJTI records (issuer, jti) as used until expiresAt; ErrConflict
	// if it was used already. Atomic: of concurrent calls, one succeeds.
	ConsumeJTI(ctx context.Context, issuer, jti string, expiresAt time.Time) error
	// DeleteExpiredJTIs removes entries that expired before now.
	DeleteExpiredJTIs(ctx context.Context, now time.Time) (int, error)
}

// Operator is a person who administers the server through the portal.
type Operator struct {
	Username string
	// PasswordHash is an argon2id hash in PHC string format.
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Operators stores portal operators.
type Operators interface {
	// CreateOperator inserts o; ErrConflict if the username exists.
	CreateOperator(ctx context.Context, o *Operator) error
	// GetOperator returns the operator or ErrNotFound.
	GetOperator(ctx context.Context, username string) (*Operator, error)
	// ListOperators returns all operators ordered by username.
	ListOperators(ctx context.Context) ([]*Operator, error)
	// UpdateOperator applies update inside a transaction.
	UpdateOperator(ctx context.Context, username string, update func(*Operator) error) (*Operator, error)
}

// Session is a signed-in portal session, keyed by the SHA-256 hash of the
// session cookie's value.
type Session struct {
	Hash []byte
	// Subject is who signed in: "operator:NAME" or "account:ID".
	Subject string
	// CSRF is the token every form of the session must carry.
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Sessions stores portal sessions, so that they survive restarts and are
// shared by instances.
type Sessions interface {
	// CreateSession inserts s; ErrConflict if its hash exists, so that no
	// session ever replaces another.
	CreateSession(ctx context.Context, s *Session) error
	// GetSession returns the session with this hash, or ErrNotFound (also
	// when it expired before now).
	GetSession(ctx context.Context, hash []byte, now time.Time) (*Session, error)
	// DeleteSession removes one session (sign-out); no error if absent.
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteSubjectSessions removes every session of a subject (after a
	// password reset or an account suspension).
	DeleteSubjectSessions(ctx context.Context, subject string) error
	// DeleteExpiredSessions removes sessions that expired before now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}

// Change is a notice that a record changed, so that in-memory copies in
// every process using the database can drop or reload it at once.
type Change struct {
	Kind string // ChangeClient, ChangeAccount, ChangeRevocation, ChangeKeys or ChangeIssuer
	Key  string // the client or account id, the jti or the issuer name; empty for keys
}

// Kinds of Change.
const (
	ChangeClient     = "client"
	ChangeAccount    = "account"
	ChangeRevocation = "revocation"
	ChangeKeys       = "keys"
	ChangeIssuer     = "issuer"
	ChangeDevice     = "device"
)

// ChangeFeed is implemented by backends that several server instances can
// share (PostgreSQL): every write of a client, an account, a revocation or
// the signing keys, by any process, is announced to every listener.
type ChangeFeed interface {
	// Listen calls fn for each change until ctx ends or the connection
	// fails (it then returns the error; call it again). Changes made while
	// no one listened are not replayed: callers poll as a fallback.
	Listen(ctx context.Context, fn func(Change)) error
}

// Elections is implemented by backends that several instances share, to
// choose one of them for work that must happen once (key rotation).
type Elections interface {
	// Elector returns a campaigner for the named role.
	Elector(role string) Elector
}

// Elector campaigns for a role.
type Elector interface {
	// Run campaigns until ctx ends: it takes the role when free and holds
	// it while its database session lives.
	Run(ctx context.Context)
	// Leader reports whether this process holds the role now.
	Leader() bool
}

// Settings the server records for the operator tools.
const (
	// SettingIssuer is the issuer `sts serve` last ran with.
	SettingIssuer = "server.issuer"
	// SettingAddr is the address `sts serve` last listened on.
	SettingAddr = "server.addr"
)

// Setting is a named value and when it was last written.
type Setting struct {
	Name      string
	Value     string
	UpdatedAt time.Time
}

// Settings stores what the server tells the operator tools about itself,
// such as its issuer, so that commands run against the same data default
// to the server's values.
type Settings interface {
	// GetSetting returns the setting or ErrNotFound.
	GetSetting(ctx context.Context, name string) (*Setting, error)
	// PutSetting inserts or replaces the setting.
	PutSetting(ctx context.Context, s *Setting) error
}

// Device trust profile kinds (issue 14).
const (
	// DeviceKindCBRS reads the WInnForum CBRS PKI's roles and identifiers
	// (FCC ID, serial number, FRN) from the certificate.
	DeviceKindCBRS = "cbrs"
	// DeviceKindX509 names the device by a CEL expression over the
	// certificate.
	DeviceKindX509 = "x509"
)

// EKU policies of a device trust profile: what the leaf's extended key
// usage must allow.
const (
	// EKUClientAuth: the leaf must list clientAuth (or anyExtendedKeyUsage).
	EKUClientAuth = "clientAuth"
	// EKUAny: any extended key usage, serverAuth-only included; a leaf
	// without the extension passes too.
	EKUAny = "any"
	// EKUNone: the extension is not looked at.
	EKUNone = "none"
)

// DeviceProfile says which device certificates are trusted and what their
// tokens may hold: a radio device (or a domain proxy speaking for many)
// authenticates by its certificate alone, with no registered client.
type DeviceProfile struct {
	// Name is the profile's unique name.
	Name string
	// Kind is DeviceKindCBRS or DeviceKindX509.
	Kind string
	// Anchors is the PEM of the trust anchors (root CAs).
	Anchors []byte
	// Identity (x509 profiles) is the CEL expression of the device's
	// identity, over the certificate; the issued sub is its value.
	Identity string
	// EKU is EKUClientAuth, EKUAny or EKUNone.
	EKU string
	// CRLFiles name CRL files (DER or PEM), reloaded when they change.
	CRLFiles []string
	// OCSPURL, when set, is asked about each leaf not found in a CRL.
	OCSPURL string
	// FCCIDs, when not empty, are the only FCC IDs trusted (cbrs).
	FCCIDs []string
	// Audiences the profile's tokens may be issued for; the first is
	// the default when a request names none.
	Audiences []string
	// Scopes the profile's tokens may carry; a request naming none gets
	// them all.
	Scopes []string
	// Policy holds CEL rules (Condition, Scope, Claims) over the device.
	Policy Policy
	// TokenTTL caps the lifetime of the tokens (never after the
	// certificate's notAfter); zero means the server's default.
	TokenTTL time.Duration
	// MaxBatch caps a domain proxy's /token/batch array (default 100,
	// never above 512); zero means the default.
	MaxBatch int
	Enabled  bool
	// FromConfig marks a profile declared in the configuration file:
	// read-only elsewhere.
	FromConfig bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// DeviceRef names one CBRS device: its FCC ID and serial number.
type DeviceRef struct {
	FCCID  string
	Serial string
}

// Delegation lets a domain proxy obtain tokens for one device.
type Delegation struct {
	// Proxy is the domain proxy's identity (devicecert.Identity.Subject
	// of its certificate, e.g. "dp:FRN:CN").
	Proxy string
	DeviceRef
	// AccountID is the account that registered the delegation ("" when
	// an operator did).
	AccountID string
	CreatedAt time.Time
}

// DelegationFilter selects delegations; zero fields match everything.
type DelegationFilter struct {
	Proxy     string
	AccountID string
	FCCID     string
	// Limit caps the number of delegations; zero means 1000.
	Limit int
}

// Devices stores device trust profiles and domain proxies' delegations.
type Devices interface {
	// CreateDeviceProfile inserts p; ErrConflict if its Name exists.
	CreateDeviceProfile(ctx context.Context, p *DeviceProfile) error
	// GetDeviceProfile returns the profile or ErrNotFound.
	GetDeviceProfile(ctx context.Context, name string) (*DeviceProfile, error)
	// ListDeviceProfiles returns every profile ordered by name.
	ListDeviceProfiles(ctx context.Context) ([]*DeviceProfile, error)
	// UpdateDeviceProfile applies update inside a transaction, like
	// UpdateClient; ErrNotFound if absent.
	UpdateDeviceProfile(ctx context.Context, name string, update func(*DeviceProfile) error) (*DeviceProfile, error)
	// DeleteDeviceProfile removes one; ErrNotFound if absent.
	DeleteDeviceProfile(ctx context.Context, name string) error

	// PutDelegations inserts the delegations in one transaction; one
	// that exists already is left as it is (not an error). It returns
	// how many were new.
	PutDelegations(ctx context.Context, ds []Delegation) (int, error)
	// DeleteDelegation removes one; ErrNotFound if absent.
	DeleteDelegation(ctx context.Context, proxy string, dev DeviceRef) error
	// ListDelegations returns matching delegations ordered by proxy,
	// FCC ID and serial.
	ListDelegations(ctx context.Context, f DelegationFilter) ([]Delegation, error)
	// Delegated reports, for each device in order, whether proxy may
	// speak for it, in one query.
	Delegated(ctx context.Context, proxy string, devs []DeviceRef) ([]bool, error)
}
