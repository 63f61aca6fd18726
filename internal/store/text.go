package store

import (
	"strings"
	"unicode/utf8"
)

// ValidText reports whether s is text every backend stores alike: valid
// UTF-8 without NUL. PostgreSQL's text refuses anything else (SQLSTATE
// 22021, in a lookup as in a write) while SQLite stores it, so a string
// that is not text can name no record; the server refuses such input where
// it enters (a form, a header, a JSON claim), and the audit escapes it.
func ValidText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// NonText returns a name of m (a form, a query: url.Values) that is not
// text or has a value that is not, and whether there is one.
func NonText(m map[string][]string) (name string, found bool) {
	for k, vs := range m {
		if !ValidText(k) {
			return k, true
		}
		for _, v := range vs {
			if !ValidText(v) {
				return k, true
			}
		}
	}
	return "", false
}
