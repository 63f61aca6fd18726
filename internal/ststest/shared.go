package ststest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/endpoint/register"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/postgres"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// EnvDatabaseURL names the variable holding the URL of the PostgreSQL test
// database, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvDatabaseURL = "STS_TEST_DATABASE_URL"

// StartOn runs another STS until the test ends on st, a store that other
// instances use too, as `sts serve` instances sharing one database do: the
// instance has its own HTTP server, key manager, caches, rate limits and
// registration locks, and shares only the records. It uses Start's
// key-encryption key, so that the instances read each other's keys and
// accept each other's client secrets.
//
// st stays the caller's to close, after the test's servers stop (a
// t.Cleanup registered before StartOn's runs after it). The instance's
// Store is st when st is a *sqlite.Store, else nil: helpers that read
// s.Store (Audit, CreateClient) then cannot be used.
func StartOn(t testing.TB, st store.Store, o Options) *STS {
	t.Helper()
	ctx := context.Background()
	sealer, err := keys.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	clock := &Clock{}
	km, err := keys.NewManager(ctx, keys.Options{
		Store: st, Sealer: sealer, Algorithm: o.Algorithm,
		RetainRetired: 25 * time.Hour, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.Limits.AccessTokenTTL == 0 {
		o.Limits.AccessTokenTTL = time.Hour
	}
	if o.Limits.RefreshTokenTTL == 0 {
		o.Limits.RefreshTokenTTL = 24 * time.Hour
	}
	if o.Limits.MaxTokenTTL == 0 {
		o.Limits.MaxTokenTTL = 24 * time.Hour
	}
	s := &STS{T: t, Keys: km, Hasher: clientauth.NewHasher(sealer.Derive("client-secret-hash")), Clock: clock}
	s.Store, _ = st.(*sqlite.Store)
	// The issuer must be known before the server is built, and the port
	// before the issuer: listen first, then attach the handler.
	s.HTTP = httptest.NewUnstartedServer(nil)
	s.URL = "http://" + s.HTTP.Listener.Addr().String()
	certs := o.TLS.setUp(t, s)
	s.Accounts = &account.Service{
		Store: st, Sealer: sealer, Audiences: []string{s.URL, s.URL + register.Path},
		RequiredClaims: o.IATRequiredClaims, Leeway: 5 * time.Second, Now: clock.Now,
	}
	issuer := s.URL
	if o.Issuer != "" {
		issuer = o.Issuer
	}
	s.Server, err = server.New(ctx, server.Options{
		Issuer: issuer, Store: st, Keys: km, Hasher: s.Hasher,
		Limits: o.Limits, Leeway: 5 * time.Second, Now: clock.Now,
		Accounts: s.Accounts, RequireApproval: o.RequireApproval, Publishers: o.Publishers,
		PerAccountPerMinute: o.PerAccountPerMinute, PerAddressPerMinute: o.PerAddressPerMinute,
		AuthFailuresPerAddress: o.AuthFailuresPerAddress, AuthFailuresPerClient: o.AuthFailuresPerClient,
		AuditRetention:         o.AuditRetention,
		AuditJournal:           o.AuditJournal,
		RegistrationTokenTTL:   o.RegistrationTokenTTL,
		Federation:             o.Federation,
		ClientAssertions:       o.ClientAssertions,
		ClientCerts:            certs,
		TrustedProxies:         o.TLS.proxies(),
		DPoPNonceKey:           o.DPoPNonceKey,
		DeviceBatchesPerMinute: o.DeviceBatchesPerMinute,
		TracerProvider:         o.TracerProvider,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.HTTP.Config.Handler = s.Server.Handler()
	if o.TLS != nil {
		s.HTTP.StartTLS()
	} else {
		s.HTTP.Start()
	}
	t.Cleanup(func() {
		s.HTTP.Close()
		s.Server.Close()
	})
	return s
}

// StartPeer runs another STS until the test ends on the database file of
// s, opened anew (its own connections, as another process would have):
// see StartOn. The peer's issuer is its own URL, so an initial access
// token for it comes from its Accounts (peer.IAT).
func (s *STS) StartPeer(o Options) *STS {
	s.T.Helper()
	var seq int
	var name, path string
	if err := s.Store.DB().QueryRow(`PRAGMA database_list`).Scan(&seq, &name, &path); err != nil || path == "" {
		s.T.Fatalf("the database file of the STS: %q, %v", path, err)
	}
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		s.T.Fatal(err)
	}
	// Registered before StartOn's cleanup, so run after it.
	s.T.Cleanup(func() { st.Close() })
	return StartOn(s.T, st, o)
}

// PostgresSchema creates a fresh schema in the PostgreSQL test database
// (EnvDatabaseURL), dropped with everything in it when the test ends, and
// returns its name; it skips the test when EnvDatabaseURL is not set.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvDatabaseURL)
	if u == "" {
		t.Skip(EnvDatabaseURL + " is not set: set it to a PostgreSQL URL, e.g. " +
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL tests")
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := "sts_t_" + hex.EncodeToString(b)
	pgExec(t, u, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() { pgExec(t, u, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) })
	return schema
}

// OpenPostgres opens a store on schema of the PostgreSQL test database,
// with a pool of its own, as one instance does; it is closed when the
// test ends, after the servers registered later.
func OpenPostgres(t testing.TB, schema string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), os.Getenv(EnvDatabaseURL),
		postgres.WithPoolConfig(func(c *pgxpool.Config) {
			c.ConnConfig.RuntimeParams["search_path"] = schema
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// pgExec runs one statement on a connection of its own. It does not use
// t.Context, which is done when cleanups run.
func pgExec(t testing.TB, databaseURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
