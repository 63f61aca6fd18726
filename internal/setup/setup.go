// Package setup turns a validated configuration into live objects: the
// logger, the store, the key-encryption key and what derives from it (the
// sealer of private keys and the client-secret hasher), and the signing-key
// manager. The CLI and the server share it so that both open the same data
// the same way.
package setup

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/endpoint/register"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/postgres"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// Env is what a command works with.
type Env struct {
	Config *config.Config
	Logger *slog.Logger
	Store  store.Store
	Sealer *keys.Sealer
	Hasher *clientauth.Hasher
}

// Logger builds the logger the configuration asks for.
func Logger(c *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// RememberedIssuer returns the issuer `sts serve` recorded in the data c
// names, without creating anything: "" when there is no such data (no
// database file, or no record) or it cannot be read.
func RememberedIssuer(ctx context.Context, c *config.Config) string {
	var (
		st  store.Store
		err error
	)
	switch {
	case c.DatabaseURL == "":
		if _, err := os.Stat(c.SQLitePath()); err != nil {
			return ""
		}
		st, err = sqlite.Open(ctx, c.SQLitePath())
	case strings.HasPrefix(c.DatabaseURL, "postgres://"), strings.HasPrefix(c.DatabaseURL, "postgresql://"):
		st, err = postgres.Open(ctx, c.DatabaseURL)
	default:
		return ""
	}
	if err != nil {
		return ""
	}
	defer st.Close()
	s, err := st.GetSetting(ctx, store.SettingIssuer)
	if err != nil {
		return ""
	}
	return s.Value
}

// Open opens the store and the key-encryption key.
func Open(ctx context.Context, c *config.Config, logw io.Writer) (*Env, error) {
	e := &Env{Config: c, Logger: Logger(c, logw)}
	var err error
	switch {
	case c.DatabaseURL == "":
		warnReadableDir(e.Logger, c.DataDir)
		e.Store, err = sqlite.Open(ctx, c.SQLitePath())
	case strings.HasPrefix(c.DatabaseURL, "postgres://"), strings.HasPrefix(c.DatabaseURL, "postgresql://"):
		// postgres.Open keeps the password out of its errors.
		e.Store, err = postgres.Open(ctx, c.DatabaseURL)
	default:
		return nil, fmt.Errorf("database-url: unsupported scheme in %q (use postgres://, or leave empty for SQLite)", redact(c.DatabaseURL))
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	var kek []byte
	if c.KeyEncryptionKey == "" && c.DatabaseURL != "" {
		// Instances sharing a database must share the key that encrypts
		// its signing keys; one generated per data directory would not be.
		e.Store.Close()
		return nil, errors.New("with --database-url, set STS_KEY_ENCRYPTION_KEY (32 bytes, base64 or hex), the same on every instance and for the CLI")
	}
	if c.KeyEncryptionKey != "" {
		kek, err = keys.ParseKEK(c.KeyEncryptionKey)
		if err != nil {
			e.Store.Close()
			return nil, fmt.Errorf("STS_KEY_ENCRYPTION_KEY: %w", err)
		}
	} else {
		var created bool
		kek, created, err = keys.LoadOrCreateKEKFile(c.KEKPath())
		if err != nil {
			e.Store.Close()
			return nil, fmt.Errorf("key-encryption key: %w", err)
		}
		if created {
			e.Logger.Warn("generated a key-encryption key in the data directory; set STS_KEY_ENCRYPTION_KEY to keep it apart from the data", "path", c.KEKPath())
		}
	}
	if e.Sealer, err = keys.NewSealer(kek); err != nil {
		e.Store.Close()
		return nil, err
	}
	e.Hasher = clientauth.NewHasher(e.Sealer.Derive("client-secret-hash"))
	return e, nil
}

// Keys returns the signing-key manager, creating the first keys if needed.
func (e *Env) Keys(ctx context.Context) (*keys.Manager, error) {
	c := e.Config
	alg := c.KeyAlgorithm
	if alg == "" {
		alg = keys.ES256
	}
	maxTTL := c.MaxTokenTTL
	if maxTTL == 0 {
		maxTTL = 24 * time.Hour
	}
	return keys.NewManager(ctx, keys.Options{
		Store:          e.Store,
		Sealer:         e.Sealer,
		Algorithm:      alg,
		RotationPeriod: c.KeyRotationPeriod,
		// A retired key stays published while any token it signed may
		// still be presented.
		RetainRetired: maxTTL + c.Leeway + time.Minute,
		Logger:        e.Logger,
		Now:           time.Now,
	})
}

// Accounts is the account service (IATs, certificates) of a server with
// this configuration's issuer.
func (e *Env) Accounts() *account.Service {
	c := e.Config
	return &account.Service{
		Store:          e.Store,
		Sealer:         e.Sealer,
		Audiences:      []string{c.Issuer, c.Issuer + register.Path},
		MaxIATLifetime: c.IATMaxLifetime,
		RequiredClaims: c.IATRequiredClaims,
		Leeway:         c.Leeway,
		Now:            time.Now,
	}
}

// Publishers reads the JWK sets of the trusted software-statement
// publishers.
func (e *Env) Publishers() (map[string]*jose.JSONWebKeySet, error) {
	out := map[string]*jose.JSONWebKeySet{}
	for iss, file := range e.Config.SoftwareStatementPublishers {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("software statement publisher %s: %w", iss, err)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(b, &set); err != nil {
			return nil, fmt.Errorf("software statement publisher %s: %s: %w", iss, file, err)
		}
		out[iss] = &set
	}
	return out, nil
}

// Clients is the client registry over this environment's store.
func (e *Env) Clients() *clients.Registry {
	return &clients.Registry{Store: e.Store, Hasher: e.Hasher, Now: time.Now, RegistrationTokenTTL: e.Config.RegistrationTokenTTL}
}

// Close closes the store.
func (e *Env) Close() error { return e.Store.Close() }

func redact(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

// warnReadableDir warns when the data directory lets other users in: the
// files in it are private (mode 0600), but names, sizes and any file a
// person copies there are not.
func warnReadableDir(log *slog.Logger, dir string) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return // Open creates it with mode 0700
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory is readable by other users; its files are created 0600, but consider chmod 700",
			"path", dir, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
	}
}
