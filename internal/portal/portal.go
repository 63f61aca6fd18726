// Package portal is the web portal served under /portal: operators and
// account holders sign in, register clients, see a secret once, issue
// initial access tokens, approve, rotate, disable and delete clients, edit
// what each may obtain, manage signing keys and read the audit log. Pages
// are server-rendered html/template with embedded assets and work without
// JavaScript.
package portal

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
)

// Path is the prefix the portal is served under.
const Path = "/portal"

// Options are the portal's dependencies and settings.
type Options struct {
	Issuer   string
	Store    store.Store
	Accounts *account.Service
	Clients  *clients.Registry
	Keys     *keys.Manager
	// Secure marks cookies Secure (the server runs behind TLS).
	Secure bool
	Logger *slog.Logger
	Now    func() time.Time
}

// Portal is the web portal.
type Portal struct{ o Options }

// New returns the portal.
func New(o Options) (*Portal, error) { return &Portal{o: o}, nil }

// ServeHTTP serves the portal's pages.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented", http.StatusNotImplemented)
}
