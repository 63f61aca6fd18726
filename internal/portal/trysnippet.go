package portal

import (
	"net/url"
	"slices"
	"strings"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// tryIt is the shell snippet the secret page offers: it obtains a token
// with the client's real id at the server's real token endpoint. The
// secret is not in it (the page shows it once, and a snippet gets pasted
// into shell histories and tickets): the first line reads it from the
// terminal, without echo, into CLIENT_SECRET. Empty when the client has no
// grant the snippet can show.
func tryIt(c *store.Client, tokenURL string) string {
	if !slices.Contains(c.GrantTypes, oauth.GrantTypeClientCredentials) {
		return ""
	}
	var b strings.Builder
	b.WriteString("read -rs CLIENT_SECRET  # paste the client_secret, then press Enter\n")
	b.WriteString("curl -sS ")
	// RFC 6749 §2.3.1: the id and secret are form-encoded before they go
	// into the Basic header; the server decodes them. QueryEscape leaves
	// nothing the shell interprets inside double quotes ($ ` \ " !).
	id := url.QueryEscape(c.ID)
	if c.AuthMethod == oauth.AuthMethodClientSecretPost {
		b.WriteString("-d client_id=" + shellWord(id) + ` --data-urlencode client_secret="$CLIENT_SECRET"`)
	} else {
		b.WriteString(`-u "` + id + `:$CLIENT_SECRET"`)
	}
	// Continued lines, so that the page shows the whole command.
	b.WriteString(" \\\n  -d grant_type=client_credentials \\\n  " + shellWord(tokenURL))
	return b.String()
}

// shellWord quotes s for a POSIX shell unless it needs no quoting.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.~/:%+=@,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
