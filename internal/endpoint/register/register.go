// Package register is dynamic client registration: RFC 7591 (POST
// /register, authorised by an initial access token of an active account)
// and RFC 7592 management (GET, PUT, DELETE /register/{client_id} with the
// registration access token).
package register

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
)

// Path is where registration is served; a client's configuration endpoint
// is Path + "/" + client_id.
const Path = "/register"

// Options are the endpoint's dependencies and settings.
type Options struct {
	Issuer   string
	Store    store.Store
	Accounts *account.Service
	Clients  *clients.Registry
	Audit    *audit.Writer
	// RequireApproval puts new registrations in the pending state until an
	// operator approves them.
	RequireApproval bool
	// Publishers are the trusted issuers of software statements (RFC 7591
	// §2.3) and their keys.
	Publishers map[string]*jose.JSONWebKeySet
	// PerAccountPerMinute and PerAddressPerMinute bound registrations.
	PerAccountPerMinute int
	PerAddressPerMinute int
	Logger              *slog.Logger
	Now                 func() time.Time
}

// Endpoint serves registration.
type Endpoint struct{ o Options }

// New returns the endpoint.
func New(o Options) *Endpoint { return &Endpoint{o: o} }

// ServeHTTP dispatches on method and path.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented", http.StatusNotImplemented)
}
