package token

import (
	"net/url"
	"strings"

	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/oauth"
)

// Request is a parsed token request. Nothing past ParseRequest reads the
// form.
type Request struct {
	GrantType string
	// Scope is nil when the scope parameter is absent.
	Scope              []string
	Resource           []string
	Audience           []string
	SubjectToken       string
	SubjectTokenType   string
	ActorToken         string
	ActorTokenType     string
	RequestedTokenType string
	RefreshToken       string
	// Assertion is the JWT of the JWT bearer grant (RFC 7523 §2.1).
	Assertion string

	// pos is what the request proves about keys (DPoP proof, client
	// certificate).
	pos possession

	// trace, when not nil, records each step's decision and the request
	// issues nothing (Endpoint.Explain).
	trace *Trace
}

// ParseRequest builds a Request from a form already checked for repeats
// and validates what every grant shares.
func ParseRequest(form url.Values) (*Request, *oauth.Error) {
	r := &Request{
		GrantType:          form.Get("grant_type"),
		Resource:           form["resource"],
		Audience:           form["audience"],
		SubjectToken:       form.Get("subject_token"),
		SubjectTokenType:   oauth.NormalizeTokenType(form.Get("subject_token_type")),
		ActorToken:         form.Get("actor_token"),
		ActorTokenType:     oauth.NormalizeTokenType(form.Get("actor_token_type")),
		RequestedTokenType: oauth.NormalizeTokenType(form.Get("requested_token_type")),
		RefreshToken:       form.Get("refresh_token"),
		Assertion:          form.Get("assertion"),
	}
	if s, ok := form["scope"]; ok {
		r.Scope = strings.Fields(s[0])
		if r.Scope == nil {
			r.Scope = []string{}
		}
	}
	return r, r.Validate()
}

// Validate checks the parameters shared by all grants.
func (r *Request) Validate() *oauth.Error {
	if r.GrantType == "" {
		return oauth.NewError(oauth.ErrInvalidRequest, "grant_type is required")
	}
	for _, s := range r.Scope {
		if !oauth.ValidScopeToken(s) {
			return oauth.NewError(oauth.ErrInvalidScope, "scope contains an invalid character")
		}
	}
	for _, res := range r.Resource {
		if !policy.ValidTarget(res) {
			// RFC 8693 §2.1 / RFC 8707 §2: an absolute URI without fragment.
			return oauth.NewError(oauth.ErrInvalidTarget, "resource must be an absolute URI without a fragment")
		}
	}
	return nil
}

// Targets returns the requested audience and resource values, each once.
func (r *Request) Targets() []string {
	if len(r.Resource)+len(r.Audience) == 0 {
		return nil
	}
	out := make([]string, 0, len(r.Resource)+len(r.Audience))
	for _, t := range append(append([]string(nil), r.Resource...), r.Audience...) {
		dup := false
		for _, o := range out {
			dup = dup || o == t
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out
}
