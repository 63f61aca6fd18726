package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	tokenep "github.com/keybridge/sts/internal/endpoint/token"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// --- Policy explain (operators only) ---

// explainForm is the explain page's form. Its tokens are never stored nor
// logged; the page is posted, so they are not in a URL either.
type explainForm struct {
	ClientID, Grant                string
	SubjectToken, SubjectTokenType string
	ActorToken, ActorTokenType     string
	Audience, Resource, Scope      string
	Errors                         map[string]string
}

type explainData struct {
	Form    *explainForm
	Clients []*store.Client
	Result  *explainResult
}

// explainResult is an Explanation made ready to show.
type explainResult struct {
	Steps   []explainStep
	Granted bool
	Error   *oauth.Error
	Claims  string // pretty JSON
}

type explainStep struct {
	Step, Outcome, Detail, Rule, Value string
	HasValue                           bool
}

// explainTokenTypes are the token types the form offers.
var explainTokenTypes = []struct{ Value, Label string }{
	{oauth.TokenTypeJWT, "jwt"},
	{oauth.TokenTypeIDToken, "id_token"},
	{oauth.TokenTypeAccessToken, "access_token"},
}

func (p *Portal) explainData(ctx context.Context, f *explainForm) (*explainData, error) {
	cs, err := p.o.Store.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	return &explainData{Form: f, Clients: cs}, nil
}

func (p *Portal) explainPage(w http.ResponseWriter, r *http.Request, u *user) error {
	if p.o.Explain == nil {
		return errNotFound
	}
	f := &explainForm{Grant: "token-exchange", SubjectTokenType: oauth.TokenTypeJWT, ClientID: r.URL.Query().Get("client"), Errors: map[string]string{}}
	d, err := p.explainData(r.Context(), f)
	if err != nil {
		return err
	}
	return p.ok(w, r, "explain", &view{Title: "Explain a token request", Nav: "explain", User: u, Data: d})
}

func (p *Portal) explainRun(w http.ResponseWriter, r *http.Request, u *user) error {
	if p.o.Explain == nil {
		return errNotFound
	}
	ctx := r.Context()
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	f := &explainForm{
		ClientID: v("client_id"), Grant: v("grant"),
		SubjectToken: v("subject_token"), SubjectTokenType: v("subject_token_type"),
		ActorToken: v("actor_token"), ActorTokenType: v("actor_token_type"),
		Audience: v("audience"), Resource: v("resource"), Scope: v("scope"),
		Errors: map[string]string{},
	}
	form := url.Values{}
	switch f.Grant {
	case "token-exchange":
		form.Set("grant_type", oauth.GrantTypeTokenExchange)
		form.Set("subject_token", f.SubjectToken)
		form.Set("subject_token_type", f.SubjectTokenType)
		if f.ActorToken != "" {
			form.Set("actor_token", f.ActorToken)
			form.Set("actor_token_type", f.ActorTokenType)
		}
	case "jwt-bearer":
		// RFC 7523 §2.1: the JWT is the "assertion"; there is no actor.
		form.Set("grant_type", oauth.GrantTypeJWTBearer)
		form.Set("assertion", f.SubjectToken)
		if f.ActorToken != "" {
			f.Errors["actor_token"] = "the JWT bearer grant takes no actor token"
		}
	default:
		f.Errors["grant"] = "choose token exchange or JWT bearer"
	}
	if f.ClientID == "" {
		f.Errors["client_id"] = "name the client that would make the request"
	}
	if f.SubjectToken == "" {
		f.Errors["subject_token"] = "paste the token to explain"
	}
	// Each value is one audience or resource, as the token endpoint takes
	// them (RFC 8693 §2.1: both may be repeated).
	for _, a := range strings.Fields(f.Audience) {
		form.Add("audience", a)
	}
	for _, res := range strings.Fields(f.Resource) {
		form.Add("resource", res)
	}
	if f.Scope != "" {
		form.Set("scope", f.Scope)
	}
	d, err := p.explainData(ctx, f)
	if err != nil {
		return err
	}
	if len(f.Errors) == 0 {
		if _, err := p.o.Store.GetClient(ctx, f.ClientID); errors.Is(err, store.ErrNotFound) {
			f.Errors["client_id"] = "there is no such client"
		} else if err != nil {
			return err
		}
	}
	if len(f.Errors) > 0 {
		p.render(w, r, http.StatusUnprocessableEntity, "explain", &view{Title: "Explain a token request", Nav: "explain", User: u, Data: d,
			Error: "Nothing was explained: correct the fields marked below."})
		return nil
	}
	x, err := p.o.Explain(ctx, f.ClientID, form)
	if err != nil {
		return err
	}
	d.Result = newExplainResult(x)
	// Like every portal page this one is no-store; it holds the pasted
	// tokens and the claims they would give.
	return p.ok(w, r, "explain", &view{Title: "Explain a token request", Nav: "explain", User: u, Data: d})
}

func newExplainResult(x *tokenep.Explanation) *explainResult {
	res := &explainResult{Granted: x.Granted, Error: x.Error}
	for _, s := range x.Steps {
		st := explainStep{Step: s.Step, Outcome: s.Outcome, Detail: s.Detail, Rule: s.Rule}
		if s.Rule != "" || s.Value != nil {
			st.HasValue = true
			st.Value = prettyJSON(s.Value)
		}
		res.Steps = append(res.Steps, st)
	}
	if x.Granted {
		res.Claims = prettyJSON(x.Issued)
	}
	return res
}

// prettyJSON shows a value as indented JSON (CEL values are JSON-like).
func prettyJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
