package stsclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keybridge/sts/oauth"
	"golang.org/x/oauth2"
)

// defaultExpiryDelta is used when Client.ExpiryDelta is zero.
const defaultExpiryDelta = 30 * time.Second

// TokenSource is an [oauth2.TokenSource] whose tokens are obtained by token
// exchange: it takes a subject token from another token source and
// exchanges it with a [Client]. Build one with [Client.TokenSource].
//
// A TokenSource is safe for concurrent use. It reuses a token until
// shortly before its expiry (see [Client.ExpiryDelta]); when a new token is
// needed, exactly one exchange is in flight and every concurrent caller of
// [TokenSource.Token] waits for it and receives its result, token or error.
// A failed exchange is not cached: the next call tries again. A token that
// came without expires_in is never reused, since its lifetime is unknown.
type TokenSource struct {
	ctx     context.Context
	client  *Client
	subject oauth2.TokenSource
	req     ExchangeRequest

	mu       sync.Mutex
	tok      *oauth2.Token
	renewAt  time.Time // when tok must be replaced
	inflight *flight
}

// flight is one exchange shared by the callers that wait for it.
type flight struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

// TokenSource returns a token source that calls subject for a subject token
// and exchanges it per req (its SubjectToken is ignored, and an empty
// SubjectTokenType means [oauth.TokenTypeAccessToken]). ctx is used for the
// exchange requests, as in [oauth2.Config.TokenSource]; it must outlive the
// token source. subject should cache its own tokens (as
// [oauth2.ReuseTokenSource] and the clientcredentials package do): it is
// called once per exchange.
//
// The exchanged token is cached for its own lifetime; RFC 8693 servers that
// cap it at the subject token's expiry (as Key Bridge STS does) never let it
// outlive its subject.
func (c *Client) TokenSource(ctx context.Context, subject oauth2.TokenSource, req ExchangeRequest) *TokenSource {
	if req.SubjectTokenType == "" {
		req.SubjectTokenType = oauth.TokenTypeAccessToken
	}
	return &TokenSource{ctx: ctx, client: c, subject: subject, req: req}
}

// Token returns a valid exchanged token, from the cache or by a new
// exchange. The returned token must not be modified.
func (s *TokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	if s.tok != nil && s.client.now().Before(s.renewAt) {
		t := s.tok
		s.mu.Unlock()
		return t, nil
	}
	if f := s.inflight; f != nil {
		s.mu.Unlock()
		<-f.done
		return f.tok, f.err
	}
	f := &flight{done: make(chan struct{})}
	s.inflight = f
	s.mu.Unlock()

	resp, err := s.exchange()

	s.mu.Lock()
	s.inflight = nil
	if err == nil {
		f.tok = resp.Token()
		s.tok, s.renewAt = f.tok, s.renewTime(resp)
	} else {
		f.err = err
		s.tok = nil
	}
	s.mu.Unlock()
	close(f.done)
	return f.tok, f.err
}

func (s *TokenSource) exchange() (*ExchangeResponse, error) {
	st, err := s.subject.Token()
	if err != nil {
		return nil, fmt.Errorf("stsclient: subject token: %w", err)
	}
	req := s.req
	req.SubjectToken = st.AccessToken
	return s.client.Exchange(s.ctx, req)
}

// renewTime is when a token of this response stops being reused: its
// expiry less the delta, and the delta never more than half the lifetime.
func (s *TokenSource) renewTime(r *ExchangeResponse) time.Time {
	if r.Expiry.IsZero() {
		return time.Time{}
	}
	delta := s.client.ExpiryDelta
	if delta <= 0 {
		delta = defaultExpiryDelta
	}
	if half := time.Duration(r.ExpiresIn) * time.Second / 2; delta > half {
		delta = half
	}
	return r.Expiry.Add(-delta)
}
