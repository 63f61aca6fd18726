package config

import (
	"strings"
	"testing"
)

// Unknown keys, at the top level and in an issuer's entry, are reported
// with the nearest known key, beside every other problem of the file
// (they no longer stop the check at the first).
func TestUnknownKeysSuggested(t *testing.T) {
	_, err := loadFile(t, `log-levle: debug
rotation-period: 1h
zzzzzzzzzzzz: 1
leeway: soon
issuers:
  - name: a
    issuer: https://a.example.com
    clients: ["*"]
    audences: [sts]
`, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`unknown setting "log-levle" (did you mean "log-level"?)`,
		`unknown setting "zzzzzzzzzzzz"` + "\n",
		`field audences not found in type config.IssuerEntry (did you mean "audiences"?)`,
		`leeway: "soon" is not a duration`,
	} {
		if !strings.Contains(err.Error()+"\n", want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// A far-fetched key gets no suggestion; a near one does.
	if s := didYouMean("rotation-period", []string{"key-rotation-period", "leeway"}); s != ` (did you mean "key-rotation-period"?)` {
		t.Errorf("didYouMean(rotation-period) = %q", s)
	}
	if s := didYouMean("zzzzzzzzzzzz", []string{"leeway", "addr"}); s != "" {
		t.Errorf("didYouMean(zzzz) = %q", s)
	}
}
