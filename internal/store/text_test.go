package store_test

import (
	"testing"

	"github.com/keybridge/sts/internal/store"
)

func TestValidText(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "client-1": true, "café ☕": true, "tab\tand\nnewline": true,
		"\x00": false, "a\x00b": false, "\xff": false, "a\xc3": false, "\xed\xa0\x80": false,
	} {
		if got := store.ValidText(s); got != want {
			t.Errorf("ValidText(%q) = %v, want %v", s, got, want)
		}
	}
	if k, bad := store.NonText(map[string][]string{"a": {"x"}, "b": {"y", "z\x00"}}); !bad || k != "b" {
		t.Errorf("NonText = %q, %v; want b, true", k, bad)
	}
	if k, bad := store.NonText(map[string][]string{"\xff": nil}); !bad || k != "\xff" {
		t.Errorf("NonText of a bad name = %q, %v", k, bad)
	}
	if _, bad := store.NonText(map[string][]string{"a": {"x"}}); bad {
		t.Error("NonText of text found something")
	}
}
