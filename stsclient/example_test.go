package stsclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/stsclient"
	"golang.org/x/oauth2"
)

// exampleSTS is a stand-in authorization server so the examples run
// without network: it publishes metadata and trades any subject token for
// "backend-token", refusing resources other than the seed's backend.
func exampleSTS() *httptest.Server {
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(oauth.Metadata{Issuer: srv.URL, TokenEndpoint: srv.URL + "/token/oauth2"})
	})
	mux.HandleFunc("POST /token/oauth2", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.FormValue("resource") != "https://backend.example.com/api" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(oauth.Error{Code: oauth.ErrInvalidTarget, Description: "resource not allowed for this client"})
			return
		}
		json.NewEncoder(w).Encode(oauth.TokenResponse{
			AccessToken: "backend-token", IssuedTokenType: oauth.TokenTypeJWT,
			TokenType: oauth.TokenTypeBearer, ExpiresIn: 3600, Scope: "api",
		})
	})
	srv = httptest.NewServer(mux)
	return srv
}

// The seed's exchange: rs08 trades the token a caller presented for a token
// aimed at https://backend.example.com/api.
func Example() {
	sts := exampleSTS()
	defer sts.Close()
	ctx := context.Background()

	md, err := stsclient.Discover(ctx, nil, sts.URL)
	if err != nil {
		log.Fatal(err)
	}
	client := &stsclient.Client{TokenURL: md.TokenEndpoint, ClientID: "rs08", ClientSecret: "long-secure-random-secret"}
	resp, err := client.Exchange(ctx, stsclient.ExchangeRequest{
		SubjectToken:     "the-callers-token",
		SubjectTokenType: oauth.TokenTypeAccessToken,
		Resource:         []string{"https://backend.example.com/api"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.AccessToken, resp.IssuedTokenType, resp.ExpiresIn, resp.Scope)
	// Output: backend-token urn:ietf:params:oauth:token-type:jwt 3600 api
}

// A refusal is an *stsclient.Error carrying the OAuth error code, its
// description and the HTTP status.
func ExampleError() {
	sts := exampleSTS()
	defer sts.Close()
	client := &stsclient.Client{TokenURL: sts.URL + "/token/oauth2", ClientID: "rs08", ClientSecret: "secret"}
	_, err := client.Exchange(context.Background(), stsclient.ExchangeRequest{
		SubjectToken:     "the-callers-token",
		SubjectTokenType: oauth.TokenTypeAccessToken,
		Resource:         []string{"https://elsewhere.example.com"},
	})
	var e *stsclient.Error
	if errors.As(err, &e) {
		fmt.Println(e.StatusCode, e.Code, e.Description)
	}
	fmt.Println(errors.Is(err, &oauth.Error{Code: oauth.ErrInvalidTarget}))
	// Output:
	// 400 invalid_target resource not allowed for this client
	// true
}

// A token source for golang.org/x/oauth2: every request to the backend
// carries an exchanged token, obtained once and reused until shortly
// before it expires.
func ExampleClient_TokenSource() {
	sts := exampleSTS()
	defer sts.Close()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw %q", r.Header.Get("Authorization"))
	}))
	defer backend.Close()
	ctx := context.Background()

	client := &stsclient.Client{TokenURL: sts.URL + "/token/oauth2", ClientID: "rs08", ClientSecret: "secret"}
	// The subject token usually comes from another token source, such as
	// golang.org/x/oauth2/clientcredentials.
	subject := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "the-callers-token"})
	ts := client.TokenSource(ctx, subject, stsclient.ExchangeRequest{
		Resource: []string{"https://backend.example.com/api"},
	})
	resp, err := oauth2.NewClient(ctx, ts).Get(backend.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b))
	// Output: backend saw "Bearer backend-token"
}
