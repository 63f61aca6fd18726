package sqlrows

import (
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// Scanner is a row to scan: a *sql.Row or *sql.Rows, a pgx.Row or pgx.Rows.
type Scanner interface {
	Scan(dest ...any) error
}

// Dialect is how the text of a query differs between the backends.
type Dialect struct {
	// numbered: placeholders are $1, $2, … rather than ?.
	numbered bool
	// byteOrder follows a text column in ORDER BY to sort it by its bytes.
	byteOrder string
}

var (
	// SQLite writes placeholders ?; its default collation, BINARY,
	// already orders text by its bytes.
	SQLite = Dialect{}
	// PostgreSQL numbers placeholders $1, $2, …; text is ordered by
	// COLLATE "C", as SQLite orders it, not by the database's collation.
	PostgreSQL = Dialect{numbered: true, byteOrder: ` COLLATE "C"`}
)

// Numbered rewrites the ? placeholders of q to $1, $2, …, in order. q must
// hold no other ? (in a string literal or a comment, say).
func Numbered(q string) string {
	var b strings.Builder
	b.Grow(len(q) + strings.Count(q, "?"))
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// Column lists, in the order of the Scan and Values functions.
const (
	ClientCols = `id, name, secret_hash, prev_secret_hash, prev_secret_expires_at,
	status, grant_types, audiences, scopes, token_format, allow_impersonation,
	access_token_ttl, refresh_token_ttl, created_at, updated_at, account_id,
	auth_method, software_id, software_version, hardware_address,
	registration_token_hash, metadata, identity, resources, exchange_any,
	introspect_any, iat_claims, registration_token_expires_at, policy, binding`
	IssuerCols = `name, issuer, enabled, source, jwks_uri, jwks, introspection_endpoint,
	introspection_client_id, introspection_client_secret, token_types, algorithms,
	audiences, max_age, leeway, clients, subject_prefix, policy, allow_http,
	created_at, updated_at`
	AccountCols  = `id, kind, name, status, shared_secret, audiences, scopes, created_at, updated_at`
	TokenCols    = `hash, kind, jti, client_id, subject, scope, audience, actor, family_id, issued_at, expires_at, revoked_at, consumed_at, cnf`
	KeyCols      = `id, algorithm, state, private_key, public_key, created_at, activated_at, retired_at, expires_at`
	OperatorCols = `username, password_hash, created_at, updated_at`
	CertCols     = `id, account_id, der, private_key, not_before, not_after, created_at`
	SessionCols  = `hash, subject, csrf, created_at, expires_at`
	// AuditCols are the columns ScanAudit reads; AuditValues leaves out
	// the first, id, which the database assigns.
	AuditCols = `id, time, action, decision, client_id, account_id, subject, actor,
	audience, jti, error, detail, request_id, remote, count, trace_id, chain, seq, hash`
	AuditChainCols    = `chain, version, seq, hash, anchor_seq, anchor_hash, created_at, updated_at`
	RevocationCols    = `jti, expires_at, revoked_at`
	DeviceProfileCols = `name, kind, anchors, identity, eku, crl_files, ocsp_url, fcc_ids,
	audiences, scopes, policy, token_ttl, max_batch, enabled, from_config,
	created_at, updated_at`
	DelegationCols = `proxy, fcc_id, serial, account_id, created_at`
)

// Queries is the text of the queries the backends share, in one dialect.
// The query of a read that locks (FOR UPDATE) is a backend's own.
type Queries struct {
	GetClient, InsertClient, UpdateClient, DeleteClient     string
	ListClients, ListAccountClients, FindClientByIdentity   string
	GetAccount, InsertAccount, UpdateAccount, ListAccounts  string
	GetToken, InsertToken, RevokeToken, DeleteExpiredTokens string
	// RevokeFamily revokes the tokens of a family that are not revoked
	// yet: a revoked token keeps the time of its first revocation.
	RevokeFamily string
	// RecordFamilyRevocation records a family as revoked (key, now,
	// family id) until the latest expiry of its stored tokens, in the
	// transaction of RevokeFamily; nothing for a family without tokens.
	// A later expiry replaces an earlier one with its revocation time, so
	// that instances polling for new revocations read it again.
	RecordFamilyRevocation string
	// RefreshState reads what RotateRefreshToken decides on;
	// RevokeUnrevoked and ConsumeToken are its writes.
	RefreshState, RevokeUnrevoked, ConsumeToken                      string
	ListKeys, CurrentKey, RetireKey, ActivateNextKey                 string
	InsertKey, DeleteExpiredKeys                                     string
	GetOperator, InsertOperator, UpdateOperator, ListOperators       string
	InsertCertificate, ListCertificates, DeleteCertificate           string
	InsertSession, GetSession, DeleteSession                         string
	DeleteSubjectSessions, DeleteExpiredSessions                     string
	RevokeJTI, IsRevoked, DeleteExpiredRevocations, ListRevocations  string
	ConsumeJTI, DeleteExpiredJTIs                                    string
	InsertAudit                                                      string
	GetSetting, PutSetting                                           string
	GetIssuer, InsertIssuer, UpdateIssuer, DeleteIssuer, ListIssuers string
	GetDeviceProfile, InsertDeviceProfile, UpdateDeviceProfile       string
	DeleteDeviceProfile, ListDeviceProfiles                          string
	InsertDelegation, DeleteDelegation                               string
	// DeleteAuditBatch deletes up to AuditDeleteBatch records older than
	// its argument, the oldest first (through the audit_time index).
	DeleteAuditBatch string
	// The audit chains (internal/audit): the head and anchor of a chain
	// (GetAuditChain, to which a backend adds its FOR UPDATE), creating
	// one, moving its head and its anchor; a chain's records after a seq;
	// retention's delete of a chain's prefix and of unchained records;
	// the unchained records and the strays of Verify.
	GetAuditChain, InsertAuditChain, UpdateAuditHead, UpdateAuditAnchor string
	// MoveAuditHead moves a chain's head (new seq, hash, time; chain) if
	// it is still the one given (seq, hash): a compare-and-swap.
	MoveAuditHead string
	// RetireAuditChains deletes the chains with no record left (anchored
	// at their head) and no append since its argument.
	RetireAuditChains                                          string
	ListAuditChains, AuditChainRecords, DeleteAuditChainPrefix string
	DeleteUnchainedAuditBatch, CountUnchainedAudit             string
	UnchainedAfter, UnknownChainAudit                          string

	numbered  bool
	byteOrder string
}

// NewQueries returns the queries in dialect d. Call it once, at package
// initialisation.
func NewQueries(d Dialect) *Queries {
	bo := d.byteOrder
	q := &Queries{
		GetClient:    `SELECT ` + ClientCols + ` FROM clients WHERE id = ?`,
		InsertClient: `INSERT INTO clients (` + ClientCols + `) VALUES (` + marks(30) + `)`,
		UpdateClient: `UPDATE clients SET name = ?, secret_hash = ?, prev_secret_hash = ?,
		prev_secret_expires_at = ?, status = ?, grant_types = ?, audiences = ?,
		scopes = ?, token_format = ?, allow_impersonation = ?, access_token_ttl = ?,
		refresh_token_ttl = ?, created_at = ?, updated_at = ?, account_id = ?,
		auth_method = ?, software_id = ?, software_version = ?, hardware_address = ?,
		registration_token_hash = ?, metadata = ?, identity = ?, resources = ?,
		exchange_any = ?, introspect_any = ?, iat_claims = ?,
		registration_token_expires_at = ?, policy = ?, binding = ?
		WHERE id = ?`,
		DeleteClient: `DELETE FROM clients WHERE id = ?`,
		ListClients:  `SELECT ` + ClientCols + ` FROM clients ORDER BY created_at, id` + bo,
		ListAccountClients: `SELECT ` + ClientCols + ` FROM clients
		WHERE account_id = ? ORDER BY created_at, id` + bo,
		FindClientByIdentity: `SELECT ` + ClientCols + ` FROM clients
		WHERE account_id = ? AND identity = ? AND identity <> ''`,

		GetAccount:    `SELECT ` + AccountCols + ` FROM accounts WHERE id = ?`,
		InsertAccount: `INSERT INTO accounts (` + AccountCols + `) VALUES (` + marks(9) + `)`,
		UpdateAccount: `UPDATE accounts SET kind = ?, name = ?, status = ?,
		shared_secret = ?, audiences = ?, scopes = ?, created_at = ?, updated_at = ?
		WHERE id = ?`,
		ListAccounts: `SELECT ` + AccountCols + ` FROM accounts ORDER BY created_at, id` + bo,

		GetToken:    `SELECT ` + TokenCols + ` FROM tokens WHERE hash = ?`,
		InsertToken: `INSERT INTO tokens (` + TokenCols + `) VALUES (` + marks(14) + `)`,
		// A family and its child families: ids equal to the argument,
		// or starting with it and the separator (substr, not LIKE: ids
		// may hold '_').
		RevokeFamily: `UPDATE tokens SET revoked_at = ?
		WHERE (family_id = ? OR substr(family_id, 1, ?) = ?) AND revoked_at = 0`,
		RecordFamilyRevocation: `INSERT INTO revoked_jtis (` + RevocationCols + `)
		SELECT ?, MAX(expires_at), ? FROM tokens WHERE family_id = ? OR substr(family_id, 1, ?) = ?
		HAVING COUNT(*) > 0
		ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at, revoked_at = excluded.revoked_at
		WHERE excluded.expires_at > revoked_jtis.expires_at`,
		RevokeToken: `UPDATE tokens
		SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END
		WHERE hash = ?`,
		DeleteExpiredTokens: `DELETE FROM tokens WHERE expires_at < ?`,
		RefreshState: `SELECT kind, family_id, expires_at, revoked_at, consumed_at
		FROM tokens WHERE hash = ?`,
		RevokeUnrevoked: `UPDATE tokens SET revoked_at = ? WHERE hash = ? AND revoked_at = 0`,
		ConsumeToken:    `UPDATE tokens SET consumed_at = ? WHERE hash = ?`,

		ListKeys: `SELECT ` + KeyCols + ` FROM signing_keys
		WHERE state <> ? OR expires_at > ?
		ORDER BY created_at DESC, id` + bo + ` DESC`,
		CurrentKey:        `SELECT id FROM signing_keys WHERE state = ?`,
		RetireKey:         `UPDATE signing_keys SET state = ?, retired_at = ?, expires_at = ? WHERE id = ?`,
		ActivateNextKey:   `UPDATE signing_keys SET state = ?, activated_at = ? WHERE state = ?`,
		InsertKey:         `INSERT INTO signing_keys (` + KeyCols + `) VALUES (` + marks(9) + `)`,
		DeleteExpiredKeys: `DELETE FROM signing_keys WHERE state = ? AND expires_at < ?`,

		GetOperator:    `SELECT ` + OperatorCols + ` FROM operators WHERE username = ?`,
		InsertOperator: `INSERT INTO operators (` + OperatorCols + `) VALUES (` + marks(4) + `)`,
		UpdateOperator: `UPDATE operators SET password_hash = ?, created_at = ?,
		updated_at = ? WHERE username = ?`,
		ListOperators: `SELECT ` + OperatorCols + ` FROM operators ORDER BY username` + bo,

		InsertCertificate: `INSERT INTO certificates (` + CertCols + `) VALUES (` + marks(7) + `)`,
		ListCertificates: `SELECT ` + CertCols + ` FROM certificates
		WHERE account_id = ? ORDER BY created_at DESC, id` + bo + ` DESC`,
		DeleteCertificate: `DELETE FROM certificates WHERE account_id = ? AND id = ?`,

		InsertSession: `INSERT INTO sessions (` + SessionCols + `) VALUES (` + marks(5) + `)`,
		GetSession: `SELECT ` + SessionCols + `
		FROM sessions WHERE hash = ? AND expires_at >= ?`,
		DeleteSession:         `DELETE FROM sessions WHERE hash = ?`,
		DeleteSubjectSessions: `DELETE FROM sessions WHERE subject = ?`,
		DeleteExpiredSessions: `DELETE FROM sessions WHERE expires_at < ?`,

		RevokeJTI: `INSERT INTO revoked_jtis (` + RevocationCols + `) VALUES (?, ?, ?)
		ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE excluded.expires_at > revoked_jtis.expires_at`,
		IsRevoked:                `SELECT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = ?)`,
		DeleteExpiredRevocations: `DELETE FROM revoked_jtis WHERE expires_at < ?`,
		ListRevocations: `SELECT ` + RevocationCols + ` FROM revoked_jtis
		WHERE revoked_at >= ? AND expires_at >= ? ORDER BY revoked_at`,

		ConsumeJTI: `INSERT INTO used_jtis (issuer, jti, expires_at)
		VALUES (?, ?, ?) ON CONFLICT (issuer, jti) DO NOTHING`,
		DeleteExpiredJTIs: `DELETE FROM used_jtis WHERE expires_at < ?`,

		GetSetting: `SELECT value, updated_at FROM settings WHERE name = ?`,
		PutSetting: `INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,

		GetIssuer:    `SELECT ` + IssuerCols + ` FROM trusted_issuers WHERE name = ?`,
		InsertIssuer: `INSERT INTO trusted_issuers (` + IssuerCols + `) VALUES (` + marks(20) + `)`,
		UpdateIssuer: `UPDATE trusted_issuers SET issuer = ?, enabled = ?, source = ?,
		jwks_uri = ?, jwks = ?, introspection_endpoint = ?, introspection_client_id = ?,
		introspection_client_secret = ?, token_types = ?, algorithms = ?, audiences = ?,
		max_age = ?, leeway = ?, clients = ?, subject_prefix = ?, policy = ?,
		allow_http = ?, created_at = ?, updated_at = ?
		WHERE name = ?`,
		DeleteIssuer: `DELETE FROM trusted_issuers WHERE name = ?`,
		ListIssuers:  `SELECT ` + IssuerCols + ` FROM trusted_issuers ORDER BY name` + bo,

		GetDeviceProfile:    `SELECT ` + DeviceProfileCols + ` FROM device_profiles WHERE name = ?`,
		InsertDeviceProfile: `INSERT INTO device_profiles (` + DeviceProfileCols + `) VALUES (` + marks(17) + `)`,
		UpdateDeviceProfile: `UPDATE device_profiles SET kind = ?, anchors = ?, identity = ?,
		eku = ?, crl_files = ?, ocsp_url = ?, fcc_ids = ?, audiences = ?, scopes = ?,
		policy = ?, token_ttl = ?, max_batch = ?, enabled = ?, from_config = ?,
		created_at = ?, updated_at = ?
		WHERE name = ?`,
		DeleteDeviceProfile: `DELETE FROM device_profiles WHERE name = ?`,
		ListDeviceProfiles:  `SELECT ` + DeviceProfileCols + ` FROM device_profiles ORDER BY name` + bo,
		// An existing delegation is kept as it is (its account and time).
		InsertDelegation: `INSERT INTO delegations (` + DelegationCols + `) VALUES (` + marks(5) + `)
		ON CONFLICT (proxy, fcc_id, serial) DO NOTHING`,
		DeleteDelegation: `DELETE FROM delegations WHERE proxy = ? AND fcc_id = ? AND serial = ?`,

		InsertAudit: `INSERT INTO audit (` + strings.TrimPrefix(AuditCols, "id, ") + `)
		VALUES (` + marks(18) + `)`,
		DeleteAuditBatch: `DELETE FROM audit WHERE id IN (
		SELECT id FROM audit WHERE time < ? ORDER BY time LIMIT ` + strconv.Itoa(AuditDeleteBatch) + `)`,

		// The "chain <> ''" and "chain = ''" terms let both databases use
		// the partial indexes audit_chain_seq and audit_unchained.
		GetAuditChain:    `SELECT ` + AuditChainCols + ` FROM audit_chains WHERE chain = ?`,
		InsertAuditChain: `INSERT INTO audit_chains (` + AuditChainCols + `) VALUES (` + marks(8) + `) ON CONFLICT (chain) DO NOTHING`,
		UpdateAuditHead:  `UPDATE audit_chains SET seq = ?, hash = ?, updated_at = ? WHERE chain = ?`,
		MoveAuditHead: `UPDATE audit_chains SET seq = ?, hash = ?, updated_at = ?
		WHERE chain = ? AND seq = ? AND hash = ?`,
		UpdateAuditAnchor: `UPDATE audit_chains SET anchor_seq = ?, anchor_hash = ? WHERE chain = ?`,
		RetireAuditChains: `DELETE FROM audit_chains WHERE anchor_seq = seq AND updated_at < ?`,
		ListAuditChains:   `SELECT ` + AuditChainCols + ` FROM audit_chains ORDER BY chain` + bo,
		AuditChainRecords: `SELECT ` + AuditCols + ` FROM audit
		WHERE chain = ? AND chain <> '' AND seq > ? ORDER BY seq, id LIMIT ?`,
		DeleteAuditChainPrefix: `DELETE FROM audit WHERE chain = ? AND chain <> '' AND seq > ? AND seq <= ?`,
		DeleteUnchainedAuditBatch: `DELETE FROM audit WHERE id IN (
		SELECT id FROM audit WHERE chain = '' AND time < ? ORDER BY time LIMIT ` + strconv.Itoa(AuditDeleteBatch) + `)`,
		CountUnchainedAudit: `SELECT count(*) FROM audit WHERE chain = '' AND id <= ?`,
		UnchainedAfter:      `SELECT ` + AuditCols + ` FROM audit WHERE chain = '' AND id > ? ORDER BY id LIMIT 1`,
		UnknownChainAudit: `SELECT ` + AuditCols + ` FROM audit WHERE chain <> ''
		AND NOT EXISTS (SELECT 1 FROM audit_chains c WHERE c.chain = audit.chain) ORDER BY id LIMIT 1`,

		numbered:  d.numbered,
		byteOrder: d.byteOrder,
	}
	if d.numbered {
		v := reflect.ValueOf(q).Elem()
		for i := range v.NumField() {
			if f := v.Field(i); f.Kind() == reflect.String && v.Type().Field(i).IsExported() {
				f.SetString(Numbered(f.String()))
			}
		}
	}
	return q
}

// Rebind writes the ? placeholders of query in the dialect of q, for a
// query built at run time (a multi-row INSERT of a backend's seeder).
func (q *Queries) Rebind(query string) string {
	if q.numbered {
		return Numbered(query)
	}
	return query
}

// Marks returns n placeholders "?" separated by commas, for Rebind.
func Marks(n int) string { return marks(n) }

// marks returns n placeholders separated by commas.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// AuditDeleteBatch is how many audit records one retention statement
// deletes: small enough that the write lock (SQLite) or the row locks
// (PostgreSQL) are held for milliseconds, so the group-commit audit writer
// and every other writer are never held up behind retention.
const AuditDeleteBatch = 1000

// DefaultAuditLimit is the number of records ListAudit returns when the
// filter sets no limit.
const DefaultAuditLimit = 100

// ListAudit returns the query that lists the audit records f selects, last
// first, and its arguments. Since is inclusive and Until exclusive.
func (q *Queries) ListAudit(f store.AuditFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	s, args := q.auditWhere(f)
	args = append(args, limit)
	ph := "?"
	if q.numbered {
		ph = "$" + strconv.Itoa(len(args))
	}
	return s + ` ORDER BY time DESC, id DESC LIMIT ` + ph, args
}

// VisitAudit returns the query of every audit record f selects, oldest
// first, f.Limit ignored, and its arguments.
func (q *Queries) VisitAudit(f store.AuditFilter) (string, []any) {
	s, args := q.auditWhere(f)
	return s + ` ORDER BY time, id`, args
}

// auditWhere returns the SELECT of the records f selects and its
// arguments.
func (q *Queries) auditWhere(f store.AuditFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	// arg adds a parameter and returns its placeholder.
	arg := func(v any) string {
		args = append(args, v)
		if q.numbered {
			return "$" + strconv.Itoa(len(args))
		}
		return "?"
	}
	if f.ClientID != "" {
		where = append(where, "client_id = "+arg(f.ClientID))
	}
	if f.AccountID != "" {
		where = append(where, "account_id = "+arg(f.AccountID))
	}
	if f.Action != "" {
		// The action itself, or a prefix of it ending at a dot. Compared
		// with substr rather than LIKE, which would take "_" and "%" in
		// the filter as wildcards and is case-insensitive in SQLite but
		// not in PostgreSQL; both count substr's length in characters,
		// as RuneCountInString does.
		prefix := f.Action + "."
		where = append(where, "(action = "+arg(f.Action)+" OR substr(action, 1, "+
			arg(utf8.RuneCountInString(prefix))+") = "+arg(prefix)+")")
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(sqlcodec.EncTime(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(sqlcodec.EncTime(f.Until)))
	}
	s := `SELECT ` + AuditCols + ` FROM audit`
	if len(where) > 0 {
		s += ` WHERE ` + strings.Join(where, " AND ")
	}
	return s, args
}

// DefaultDelegationLimit is the number of delegations ListDelegations
// returns when the filter sets no limit.
const DefaultDelegationLimit = 1000

// ListDelegations returns the query that lists the delegations f selects,
// ordered by proxy, FCC ID and serial (by their bytes), and its arguments.
func (q *Queries) ListDelegations(f store.DelegationFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		if q.numbered {
			return "$" + strconv.Itoa(len(args))
		}
		return "?"
	}
	if f.Proxy != "" {
		where = append(where, "proxy = "+arg(f.Proxy))
	}
	if f.AccountID != "" {
		where = append(where, "account_id = "+arg(f.AccountID))
	}
	if f.FCCID != "" {
		where = append(where, "fcc_id = "+arg(f.FCCID))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultDelegationLimit
	}
	s := `SELECT ` + DelegationCols + ` FROM delegations`
	if len(where) > 0 {
		s += ` WHERE ` + strings.Join(where, " AND ")
	}
	bo := q.byteOrder
	s += ` ORDER BY proxy` + bo + `, fcc_id` + bo + `, serial` + bo + ` LIMIT ` + arg(limit)
	return s, args
}

// Delegated returns the query that reads which of devs proxy may speak
// for, in one statement whatever their number, and its arguments: each row
// is the 0-based index in devs of a delegated device. PostgreSQL gets two
// text arrays (one query text for every batch size, so that the driver's
// statement cache is not filled with one per size); SQLite a VALUES list.
func (q *Queries) Delegated(proxy string, devs []store.DeviceRef) (string, []any) {
	if q.numbered {
		fcc, serial := make([]string, len(devs)), make([]string, len(devs))
		for i, d := range devs {
			fcc[i], serial[i] = d.FCCID, d.Serial
		}
		return `SELECT u.i - 1 FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(f, s, i)
		JOIN delegations d ON d.proxy = $1 AND d.fcc_id = u.f AND d.serial = u.s`, []any{proxy, fcc, serial}
	}
	var b strings.Builder
	args := make([]any, 0, 1+3*len(devs))
	args = append(args, proxy)
	b.WriteString(`WITH want(i, f, s) AS (VALUES `)
	for i, d := range devs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?)")
		args = append(args, i, d.FCCID, d.Serial)
	}
	b.WriteString(`) SELECT want.i FROM want JOIN delegations d
		ON d.proxy = ? AND d.fcc_id = want.f AND d.serial = want.s`)
	// The proxy's placeholder comes last in the text.
	args = append(args[1:], proxy)
	return b.String(), args
}

// DelegationChunk is the most delegations one InsertDelegations statement
// writes: SQLite binds 5 parameters per row (at most 32766 per statement).
const DelegationChunk = 1000

// InsertDelegations returns the statement that inserts ds (at most
// DelegationChunk), leaving existing ones as they are, and its arguments;
// the rows it changes are the new delegations. PostgreSQL gets arrays
// (one query text whatever the count), SQLite a VALUES list.
func (q *Queries) InsertDelegations(ds []store.Delegation) (string, []any) {
	const conflict = ` ON CONFLICT (proxy, fcc_id, serial) DO NOTHING`
	if q.numbered {
		var (
			proxy, fcc, serial, acct = make([]string, len(ds)), make([]string, len(ds)), make([]string, len(ds)), make([]string, len(ds))
			created                  = make([]int64, len(ds))
		)
		for i := range ds {
			d := &ds[i]
			proxy[i], fcc[i], serial[i], acct[i] = d.Proxy, d.FCCID, d.Serial, d.AccountID
			created[i] = sqlcodec.EncTime(d.CreatedAt)
		}
		return `INSERT INTO delegations (` + DelegationCols + `)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])` + conflict,
			[]any{proxy, fcc, serial, acct, created}
	}
	var b strings.Builder
	args := make([]any, 0, 5*len(ds))
	b.WriteString(`INSERT INTO delegations (` + DelegationCols + `) VALUES `)
	for i := range ds {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?)")
		args = append(args, DelegationValues(&ds[i])...)
	}
	b.WriteString(conflict)
	return b.String(), args
}
