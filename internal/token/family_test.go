package token_test

import (
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
)

func TestChildFamily(t *testing.T) {
	if token.ChildFamily("") != "" {
		t.Error("a child of no family")
	}
	f := "root"
	for depth := 1; depth < token.MaxFamilyDepth; depth++ {
		c := token.ChildFamily(f)
		if !strings.HasPrefix(c, f+store.FamilySeparator) || len(store.FamilyLineage(c)) != depth+1 {
			t.Fatalf("ChildFamily(%q) = %q", f, c)
		}
		f = c
	}
	if c := token.ChildFamily(f); c != f {
		t.Errorf("at the depth bound, ChildFamily(%q) = %q, want the family itself", f, c)
	}
	if got := store.FamilyLineage("a.b.c"); strings.Join(got, " ") != "a a.b a.b.c" {
		t.Errorf("FamilyLineage = %q", got)
	}
}
