package portal

import (
	"strings"
	"testing"
	"time"
)

// TestIDHTML (issue 9, portal item 2): generated ids are shown whole and
// unbreakable; a longer chosen id is shortened visibly, whole in its
// title; subjects naming an id keep it whole; cuts fall between
// characters, not inside one.
func TestIDHTML(t *testing.T) {
	for in, want := range map[string]string{
		"hxac64julu2buiczdscnbprgna":                    `<code class="id">hxac64julu2buiczdscnbprgna</code>`,
		"acct-zmvj24l6bfaohway":                         `<code class="id">acct-zmvj24l6bfaohway</code>`,
		"infrastructure-gateway-for-the-eu-west-region": `<code class="id" title="infrastructure-gateway-for-the-eu-west-region">infrastructure-gateway-fo…</code>`,
		`a<b>"c'`: `<code class="id">a&lt;b&gt;&#34;c&#39;</code>`,
	} {
		if got := string(idHTML(in)); got != want {
			t.Errorf("idHTML(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"operator:admin":                               `operator:<wbr><span class="nowrap">admin</span>`,
		"client:hxac64julu2buiczdscnbprgna":            `client:<wbr><span class="nowrap">hxac64julu2buiczdscnbprgna</span>`,
		"hxac64julu2buiczdscnbprgna":                   `<wbr><span class="nowrap">hxac64julu2buiczdscnbprgna</span>`,
		"https://idp.example/users/7f3c9a2e-51d4-4b8e": "https://idp.example/users/7f3c9a2e-51d4-4b8e",
		"user:" + strings.Repeat("é", 70):              "user:" + strings.Repeat("é", 55) + "…",
	} {
		if got := string(subjectHTML(in)); got != want {
			t.Errorf("subjectHTML(%q) = %s, want %s", in, got, want)
		}
	}
	ts := time.Date(2026, 1, 31, 13, 45, 5, 0, time.FixedZone("x", 3600))
	if got, want := string(timeHTML(ts)), `<time datetime="2026-01-31T12:45:05Z"><span class="nowrap">2026-01-31</span> <span class="nowrap">12:45:05 UTC</span></time>`; got != want {
		t.Errorf("timeHTML = %s", got)
	}
}
