package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/keybridge/sts/internal/store"
)

// Field caps, in bytes. Every field of a record can come from a caller (a
// client id, a subject, an audience, a request id header), so each has a
// cap, applied by [Bound] to every record any writer stores: the
// [Writer], and the SQL backends themselves (sqlrows.AuditValues), so a
// writer that goes straight to the store cannot forget them.
const (
	// MaxID bounds identifiers: client and account ids (a valid client id
	// has at most 255 characters, so every real one is stored verbatim),
	// jti.
	MaxID = 255
	// MaxName bounds the subject and the actor.
	MaxName = 255
	// MaxCode bounds the action, the decision and the error code, which
	// the server chooses.
	MaxCode = 64
	// MaxDetail bounds the human-readable reason.
	MaxDetail = 512
	// MaxAudiences bounds the number of audience entries kept, each capped
	// at MaxName.
	MaxAudiences = 16
	// MaxRequestID and MaxRemote bound the request id and the remote
	// address (an IPv6 address with zone and port fits).
	MaxRequestID = 64
	MaxRemote    = 64
)

// keep is how much of an oversized identifier is kept before its hash.
const keep = 64

// BoundID returns id unchanged when it has at most MaxID bytes, and
// otherwise its first 64 bytes, "…" and the first 16 hex digits of its
// SHA-256: distinct long ids stay distinguishable, and the result can never
// equal a real client id (those are visible ASCII only, and at most 255
// bytes).
func BoundID(id string) string { return clip(id, MaxID) }

// clip caps s at max bytes, keeping a prefix and a hash of the whole.
func clip(s string, max int) string {
	s = text(s)
	if len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:8])
	return prefix(s, min(keep, max-len("…")-len(h))) + "…" + h
}

// cut caps free text at max bytes, marking the cut.
func cut(s string, max int) string {
	s = text(s)
	if len(s) <= max {
		return s
	}
	return prefix(s, max-len("…")) + "…"
}

// text returns s as text every backend stores alike: a byte that is not
// part of valid UTF-8, and NUL (which PostgreSQL's text refuses), are
// written as \xNN. Unchanged (and not copied) when there is none, which is
// every record the server writes about a well-formed request. Without it,
// one such byte from a caller (a client id, a request id header) would make
// PostgreSQL refuse the whole batch, and with it the records of every
// other request in the batch.
func text(s string) string {
	if store.ValidText(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == 0 || (r == utf8.RuneError && n == 1) {
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[s[i]>>4])
			b.WriteByte(hexDigits[s[i]&0xf])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

const hexDigits = "0123456789abcdef"

// prefix is the longest prefix of s of at most n bytes that does not split
// a UTF-8 sequence.
func prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Bound returns r with every field within its cap. Identifiers that are
// too long are truncated with a hash suffix ([BoundID]); free text is
// truncated; at most MaxAudiences audience entries are kept, the last of
// them saying how many were left out. Bytes that are not UTF-8 text, and
// NUL, are escaped first (see text), so the caps count the stored form.
func Bound(r store.AuditRecord) store.AuditRecord {
	r.Action = cut(r.Action, MaxCode)
	r.Decision = cut(r.Decision, MaxCode)
	r.Error = cut(r.Error, MaxCode)
	r.ClientID = clip(r.ClientID, MaxID)
	r.AccountID = clip(r.AccountID, MaxID)
	r.JTI = clip(r.JTI, MaxID)
	r.Subject = clip(r.Subject, MaxName)
	r.Actor = clip(r.Actor, MaxName)
	r.Detail = cut(r.Detail, MaxDetail)
	r.RequestID = clip(r.RequestID, MaxRequestID)
	r.Remote = cut(r.Remote, MaxRemote)
	r.TraceID = cut(r.TraceID, MaxRequestID)
	if needs := len(r.Audience) > MaxAudiences || anyLonger(r.Audience, MaxName) || !allText(r.Audience); needs {
		n := min(len(r.Audience), MaxAudiences)
		aud := make([]string, 0, n)
		for i, a := range r.Audience[:n] {
			if i == MaxAudiences-1 && len(r.Audience) > MaxAudiences {
				aud = append(aud, "… "+strconv.Itoa(len(r.Audience)-i)+" more")
				break
			}
			aud = append(aud, clip(a, MaxName))
		}
		r.Audience = aud
	}
	r.Count = max(r.Count, 1)
	return r
}

func allText(l []string) bool {
	for _, s := range l {
		if !store.ValidText(s) {
			return false
		}
	}
	return true
}

func anyLonger(l []string, max int) bool {
	for _, s := range l {
		if len(s) > max {
			return true
		}
	}
	return false
}
