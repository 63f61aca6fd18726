package celpolicy

import (
	"encoding/json"
	"testing"

	"github.com/keybridge/sts/internal/store"
)

// FuzzEval: whatever claims an upstream token carries, evaluation ends
// with a value or an error, never a panic, and claim values encode as
// JSON.
func FuzzEval(f *testing.F) {
	f.Add(githubClaims)
	f.Add(kubernetesClaims)
	f.Add(`{"sub": 1, "kubernetes.io": [], "repository": {"a": null}}`)
	f.Add(`{"groups": ["a", 2, null, {"x": 1e308}], "exp": -0.5}`)
	prog, err := Compile(owner, store.Policy{
		Subject:   `subject.sub`,
		Condition: `has(subject.sub) && subject.sub.startsWith("repo:") || subject["kubernetes.io"].namespace == "prod"`,
		Scope:     `has(subject.groups) ? subject.groups : []`,
		Claims: map[string]string{
			"all":   `subject`,
			"ns":    `subject[?"kubernetes.io"].namespace`,
			"twice": `subject.exp * 2`,
			"size":  `size(subject)`,
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, js string) {
		var sub map[string]any
		if json.Unmarshal([]byte(js), &sub) != nil {
			return
		}
		res, err := prog.Eval(&Input{Subject: sub}, true)
		if err != nil {
			return
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("result does not encode: %v (%#v)", err, res)
		}
	})
}

// FuzzCompile: any text an operator saves is compiled or refused, never
// a panic.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{`subject.sub == "x"`, `subject.`, `[1, 2].map(x, x)`, "\"\\u", `has(`, `{1: b"x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		prog, err := Compile(owner, store.Policy{Condition: expr, Claims: map[string]string{"x": expr}})
		if err == nil {
			_, _ = prog.Eval(&Input{}, true)
		}
	})
}
