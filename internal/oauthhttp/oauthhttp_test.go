package oauthhttp

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keybridge/sts/oauth"
)

// RFC 6750 §3: invalid_token is answered with a Bearer challenge carrying
// the error code and a description restricted to the characters §3 allows.
func TestRFC6750_3_WriteErrorInvalidToken(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, nil, oauth.NewError(oauth.ErrInvalidToken, `bad "token" \ é`+"\n").WithCause(errors.New("secret cause")))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("status %d", w.Code)
	}
	want := `Bearer realm="Key Bridge STS", error="invalid_token", error_description="bad token  "`
	if got := w.Header().Get("WWW-Authenticate"); got != want {
		t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, want)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("no Cache-Control: no-store")
	}
	// invalid_client keeps its Basic challenge; other codes have none.
	w = httptest.NewRecorder()
	WriteError(w, nil, oauth.NewError(oauth.ErrInvalidClient, "x"))
	if got := w.Header().Get("WWW-Authenticate"); got != `Basic realm="Key Bridge STS"` {
		t.Errorf("invalid_client challenge %q", got)
	}
	w = httptest.NewRecorder()
	WriteError(w, nil, oauth.NewError(oauth.ErrInvalidClientMetadata, "x"))
	if got := w.Header().Get("WWW-Authenticate"); got != "" || w.Code != http.StatusBadRequest {
		t.Errorf("invalid_client_metadata: %d, challenge %q", w.Code, got)
	}
}

func TestBearerChallengeWithoutError(t *testing.T) {
	if got := BearerChallenge("", "ignored"); got != `Bearer realm="Key Bridge STS"` {
		t.Errorf("BearerChallenge without code = %q", got)
	}
	if got := BearerChallenge(oauth.ErrInvalidToken, ""); got != `Bearer realm="Key Bridge STS", error="invalid_token"` {
		t.Errorf("BearerChallenge without description = %q", got)
	}
}

// TestWriteErrorLogsCause (issue 9): a refusal's hidden cause is logged at
// debug level under the request id, never sent; nothing is logged at info.
func TestWriteErrorLogsCause(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
		w := httptest.NewRecorder()
		w.Header().Set("X-Request-Id", "req-42")
		WriteError(w, log, oauth.NewError(oauth.ErrInvalidClient, "client authentication failed").WithCause(errors.New("wrong secret for client c1")))
		if strings.Contains(w.Body.String(), "wrong secret") {
			t.Fatalf("the cause reached the client: %s", w.Body)
		}
		got := buf.String()
		if level == slog.LevelDebug {
			for _, want := range []string{"request refused", "error=invalid_client", `cause="wrong secret for client c1"`, "request_id=req-42"} {
				if !strings.Contains(got, want) {
					t.Errorf("debug log lacks %q: %s", want, got)
				}
			}
		} else if got != "" {
			t.Errorf("a refusal logged at info: %s", got)
		}
	}
}

// TestParseFormRefusesBytesNotText: a parameter name or value with a byte
// that is not UTF-8, or NUL, is invalid_request (RFC 6749 Appendix A:
// parameters are Unicode text); PostgreSQL would refuse it at the first
// lookup, a server error.
func TestParseFormRefusesBytesNotText(t *testing.T) {
	for _, body := range []string{
		"grant_type=client_credentials&client_id=%FF",
		"grant_type=client_credentials&client_id=a%00b",
		"grant_type=client_credentials&scope=api%C3",
		"grant_type=client_credentials&resource=https://rs.example.com/%ED%A0%80", // a surrogate
		"grant_type=client_credentials&x%FF=1",
	} {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_, oe := ParseForm(httptest.NewRecorder(), r)
		if oe == nil || oe.Code != oauth.ErrInvalidRequest || oe.HTTPStatus() != http.StatusBadRequest ||
			!strings.Contains(oe.Description, "not UTF-8 text") {
			t.Errorf("%s: got %v, want invalid_request about UTF-8 text", body, oe)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader("grant_type=client_credentials&scope=caf%C3%A9"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, oe := ParseForm(httptest.NewRecorder(), r); oe != nil {
		t.Errorf("UTF-8 text refused: %v", oe)
	}
}
