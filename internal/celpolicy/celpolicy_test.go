package celpolicy

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/cel-go/interpreter"

	"github.com/keybridge/sts/internal/store"
)

// claims decodes a token's claims as the federation code does (with
// encoding/json, so numbers are float64).
func claims(t testing.TB, js string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return m
}

// numberClaims decodes claims keeping numbers as json.Number.
func numberClaims(t testing.TB, js string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(js))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return m
}

// githubClaims is a GitHub Actions OIDC token's payload, with the claims
// GitHub documents ("About security hardening with OpenID Connect").
const githubClaims = `{
	"jti": "example-id",
	"sub": "repo:octo-org/octo-repo:environment:prod",
	"environment": "prod",
	"aud": "https://sts.example",
	"ref": "refs/heads/main",
	"sha": "example-sha",
	"repository": "octo-org/octo-repo",
	"repository_owner": "octo-org",
	"actor_id": "12",
	"repository_visibility": "private",
	"repository_id": "74",
	"repository_owner_id": "65",
	"run_id": "example-run-id",
	"run_number": "10",
	"run_attempt": "2",
	"runner_environment": "github-hosted",
	"actor": "octocat",
	"workflow": "example-workflow",
	"head_ref": "",
	"base_ref": "",
	"event_name": "workflow_dispatch",
	"ref_type": "branch",
	"job_workflow_ref": "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
	"iss": "https://token.actions.githubusercontent.com",
	"nbf": 1632492967,
	"exp": 1632493867,
	"iat": 1632493567
}`

// kubernetesClaims is a projected service account token's payload, as
// the Kubernetes API server issues it (TokenRequest API).
const kubernetesClaims = `{
	"aud": ["https://sts.example"],
	"exp": 1731613413,
	"iat": 1700077413,
	"iss": "https://kubernetes.default.svc.cluster.local",
	"jti": "ea28ed49-2e11-4280-9ec5-bc3d1d84661a",
	"kubernetes.io": {
		"namespace": "prod",
		"node": {"name": "node-1", "uid": "646e7c5e-32d6-4d42-9dbd-e504e6cbe6b1"},
		"pod": {"name": "deployer-5d8c7b9f4-x2x7k", "uid": "5e0bd49b-f040-43b0-99b7-22765a53f7f3"},
		"serviceaccount": {"name": "deployer", "uid": "14ee3fa4-a7e2-420f-9f9a-dbc4507c3798"},
		"warnafter": 1700081020
	},
	"nbf": 1700077413,
	"sub": "system:serviceaccount:prod:deployer"
}`

const owner = `client "c-1"`

func mustCompile(t testing.TB, p store.Policy) *Program {
	t.Helper()
	prog, err := Compile(owner, p)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", p, err)
	}
	if prog == nil {
		t.Fatalf("Compile(%+v) = nil", p)
	}
	return prog
}

func TestCompileGood(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    store.Policy
	}{
		{"condition bool", store.Policy{Condition: `subject.sub == "x"`}},
		{"condition dyn", store.Policy{Condition: `subject.email_verified`}},
		{"condition multi-line", store.Policy{Condition: "has(subject.email) &&\n  subject.email.endsWith('@example.com')"}},
		{"scope list(string)", store.Policy{Scope: `["read", "write"]`}},
		{"scope from request", store.Policy{Scope: `request.scope.filter(s, s.startsWith("repo:"))`}},
		{"scope dyn", store.Policy{Scope: `subject.groups`}},
		{"scope list(dyn)", store.Policy{Scope: `subject.groups.map(g, g)`}},
		{"subject string", store.Policy{Subject: `"gh:" + subject.repository`}},
		{"subject dyn", store.Policy{Subject: `subject.email`}},
		{"claim copy", store.Policy{Claims: map[string]string{"repository": `subject.repository`}}},
		{"claim computed", store.Policy{Claims: map[string]string{"domain": `subject.email.split("@")[1]`}}},
		{"claim map", store.Policy{Claims: map[string]string{"k8s": `{"ns": subject["kubernetes.io"].namespace, "n": 1}`}}},
		{"claim timestamp", store.Policy{Claims: map[string]string{"t": `timestamp("2026-01-02T03:04:05Z")`}}},
		{"claim optional", store.Policy{Claims: map[string]string{"email": `subject.?email`}}},
		{"claim non-ASCII name", store.Policy{Claims: map[string]string{"équipe": `"x"`}}},
		{"claim name 64 bytes", store.Policy{Claims: map[string]string{strings.Repeat("n", 64): `1`}}},
		{"every variable", store.Policy{Condition: `subject_issuer != "" && actor_issuer == "" && !has(actor.sub) && client.id == "c-1" && "https://api" in request.audiences && size(request.resources) >= 0`}},
		{"extensions", store.Policy{Condition: `sets.intersects(request.scope, ["a"]) && [2, 1].sort() == [1, 2] && "A".lowerAscii() == "a" && math.greatest(1, 2) == 2`}},
		{"every rule", store.Policy{Subject: `subject.sub`, Condition: `true`, Scope: `[]`, Claims: map[string]string{"a": `1`, "b": `"2"`}}},
		{"expression of 4 KiB", store.Policy{Condition: `"` + strings.Repeat("x", MaxExprLen-len(`"" != ""`)) + `" != ""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := mustCompile(t, tc.p)
			if prog.Owner() != owner {
				t.Errorf("Owner() = %q", prog.Owner())
			}
		})
	}
}

func TestCompileZeroPolicy(t *testing.T) {
	prog, err := Compile(owner, store.Policy{})
	if prog != nil || err != nil {
		t.Fatalf("Compile(zero) = %v, %v; want nil, nil", prog, err)
	}
	res, err := prog.Eval(&Input{}, true)
	if err != nil || !res.Allowed || res.Subject != "" || res.Scopes != nil || res.Claims != nil || res.Steps != nil {
		t.Fatalf("nil Program Eval = %+v, %v; want allowed and nothing set", res, err)
	}
}

func TestCompileBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    store.Policy
		// want is the exact message of the one error (owner, rule,
		// position, cause) unless prefix is set.
		want   string
		prefix bool
	}{
		{"undeclared variable", store.Policy{Condition: `subjct.sub == "x"`},
			`client "c-1": condition: 1:1: undeclared reference to 'subjct'`, false},
		{"undeclared after the start", store.Policy{Condition: `subject.sub == clent.id`},
			`client "c-1": condition: 1:16: undeclared reference to 'clent'`, false},
		{"undeclared function", store.Policy{Claims: map[string]string{"x": `subject.sub.reverse2()`}},
			`client "c-1": claim x: 1:21: undeclared reference to 'reverse2'`, false},
		{"syntax error position", store.Policy{Condition: `subject.sub ==`},
			`client "c-1": condition: 1:15: Syntax error: mismatched input '<EOF>'`, true},
		{"syntax error on line 2", store.Policy{Scope: "[\"a\",\n  \"b\" \"c\"]"},
			`client "c-1": scope: 2:7: Syntax error`, true},
		{"bad regex literal", store.Policy{Condition: `subject.email.matches("[")`},
			`client "c-1": condition: 1:23: invalid matches argument`, false},
		{"bad timestamp literal", store.Policy{Claims: map[string]string{"t": `timestamp("yesterday")`}},
			`client "c-1": claim t: 1:11: invalid timestamp argument`, false},
		{"bad duration literal", store.Policy{Condition: `duration("1 day") > duration("1h")`},
			`client "c-1": condition: 1:10: invalid duration argument`, false},
		{"condition returning string", store.Policy{Condition: `subject_issuer`},
			`client "c-1": condition: its type is string; a condition rule must be bool`, false},
		{"condition returning int", store.Policy{Condition: `size(subject)`},
			`client "c-1": condition: its type is int; a condition rule must be bool`, false},
		{"scope returning string", store.Policy{Scope: `"read write"`},
			`client "c-1": scope: its type is string; a scope rule must be list(string)`, false},
		{"scope returning list(int)", store.Policy{Scope: `[1, 2]`},
			`client "c-1": scope: its type is list(int); a scope rule must be list(string)`, false},
		{"scope returning map", store.Policy{Scope: `client`},
			`client "c-1": scope: its type is map(string, string); a scope rule must be list(string)`, false},
		{"subject returning int", store.Policy{Subject: `1`},
			`client "c-1": subject: its type is int; a subject rule must be string`, false},
		{"subject returning list", store.Policy{Subject: `request.audiences`},
			`client "c-1": subject: its type is list(string); a subject rule must be string`, false},
		{"claim bytes", store.Policy{Claims: map[string]string{"x": `b"x"`}},
			`client "c-1": claim x: its type is bytes, which a JSON claim cannot hold`, false},
		{"claim type", store.Policy{Claims: map[string]string{"x": `type(1)`}},
			`client "c-1": claim x: its type is type(int), which a JSON claim cannot hold`, false},
		{"claim list of bytes", store.Policy{Claims: map[string]string{"x": `[b"x"]`}},
			`client "c-1": claim x: its type is list(bytes), which a JSON claim cannot hold`, false},
		{"claim optional bytes", store.Policy{Claims: map[string]string{"x": `optional.of(b"x")`}},
			`client "c-1": claim x: its type is optional_type(bytes), which a JSON claim cannot hold`, false},
		{"claim map with int keys", store.Policy{Claims: map[string]string{"m": `{1: "a"}`}},
			`client "c-1": claim m: its type is map(int, string), which a JSON claim cannot hold`, false},
		{"expression too long", store.Policy{Condition: `"` + strings.Repeat("x", MaxExprLen) + `" != ""`},
			fmt.Sprintf(`client "c-1": condition: the expression is %d bytes long, more than 4096`, MaxExprLen+len(`"" != ""`)), false},
		{"blank expression", store.Policy{Claims: map[string]string{"x": " \n"}},
			`client "c-1": claim x: the expression is blank`, false},
		{"empty claim name", store.Policy{Claims: map[string]string{"": `1`}},
			`client "c-1": claim "": the claim name is empty`, false},
		{"claim name too long", store.Policy{Claims: map[string]string{strings.Repeat("n", 65): `1`}},
			`client "c-1": claim ` + strings.Repeat("n", 65) + `: the claim name is longer than 64 bytes`, false},
		{"claim name with a space", store.Policy{Claims: map[string]string{"a b": `1`}},
			`client "c-1": claim "a b": the claim name "a b" has a space or an unprintable character`, false},
		{"claim name with a control character", store.Policy{Claims: map[string]string{"a\x00": `1`}},
			`client "c-1": claim "a\x00": the claim name "a\x00" has a space or an unprintable character`, false},
		{"claim name not UTF-8", store.Policy{Claims: map[string]string{"a\xff": `1`}},
			`client "c-1": claim "a\xff": the claim name is not valid UTF-8`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog, err := Compile(owner, tc.p)
			if err == nil {
				t.Fatalf("Compile succeeded (%v); want %q", prog, tc.want)
			}
			if prog != nil {
				t.Errorf("Compile returned a Program with its error")
			}
			got := err.Error()
			if tc.prefix && !strings.HasPrefix(got, tc.want) || !tc.prefix && got != tc.want {
				t.Errorf("error\n got %q\nwant %q", got, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Owner != owner {
				t.Errorf("error is not an *Error naming the owner: %#v", err)
			}
		})
	}
}

// TestCompileListsEveryBadRule: an operator fixing a policy sees every
// problem at once, not one per attempt.
func TestCompileListsEveryBadRule(t *testing.T) {
	_, err := Compile(`issuer "github"`, store.Policy{
		Subject:   `1`,
		Condition: `subjct.sub == "x"`,
		Scope:     `["ok"]`,
		Claims:    map[string]string{"iss": `"x"`, "fine": `subject.sub`, "bad": `subject.`},
	})
	if err == nil {
		t.Fatal("Compile succeeded")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not joined", err)
	}
	var rules []string
	for _, e := range joined.Unwrap() {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not an *Error", e)
		}
		if ce.Owner != `issuer "github"` {
			t.Errorf("owner %q", ce.Owner)
		}
		rules = append(rules, ce.Rule)
	}
	want := []string{"subject", "condition", "claim bad", "claim iss"}
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("rules refused %q, want %q (full error: %v)", rules, want, err)
	}
}

func TestReservedClaimsRefused(t *testing.T) {
	if len(ReservedClaims) < 14 {
		t.Fatalf("ReservedClaims lost some: %q", ReservedClaims)
	}
	for _, name := range ReservedClaims {
		t.Run(name, func(t *testing.T) {
			_, err := Compile(owner, store.Policy{Claims: map[string]string{name: `"x"`}})
			want := fmt.Sprintf(`client "c-1": claim %s: %q is a reserved claim, written by the server`, name, name)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Compile: %v; want %q...", err, want)
			}
			if _, err := ParseClaimFlags([]string{name + `="x"`}); err == nil || !strings.Contains(err.Error(), "reserved") {
				t.Errorf("ParseClaimFlags: %v; want a reserved-claim error", err)
			}
		})
	}
	mustCompile(t, store.Policy{Claims: map[string]string{"issuer": `"x"`, "subject": `"x"`}})
}

// TestReservedClaimsRefusedInAnyCase: RFC 7519 §4 names are
// case-sensitive, but encoding/json decodes "SUB" into the field of "sub"
// (the last duplicate wins), so a claim rule "SUB" or "Exp" would replace
// the subject or the expiry of this server's token when it is validated
// again (review of issue 11).
func TestReservedClaimsRefusedInAnyCase(t *testing.T) {
	for _, name := range []string{"SUB", "Sub", "ISS", "Exp", "Client_ID", "ACT", "Scope", "Sub_Id", "\u017fub", "\u017fcope"} {
		if _, err := Compile(owner, store.Policy{Claims: map[string]string{name: `"x"`}}); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("Compile claim %s: %v; want a reserved-claim error", name, err)
		}
		if _, err := ParseClaimFlags([]string{name + `="x"`}); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("ParseClaimFlags %s: %v; want a reserved-claim error", name, err)
		}
	}
}

func TestEval(t *testing.T) {
	gh := claims(t, githubClaims)
	k8s := claims(t, kubernetesClaims)
	ghIn := &Input{
		Subject:       gh,
		SubjectIssuer: "https://token.actions.githubusercontent.com",
		Client:        Client{ID: "c-1", Account: "acct-1", Name: "deployer"},
		Request:       Request{Audiences: []string{"https://api.example"}, Scope: []string{"repo:read", "repo:write", "admin"}},
	}
	k8sIn := &Input{Subject: k8s, SubjectIssuer: "https://kubernetes.default.svc.cluster.local"}
	for _, tc := range []struct {
		name string
		p    store.Policy
		in   *Input
		want Result
	}{
		{
			name: "GitHub Actions: repository and ref",
			p: store.Policy{
				Condition: `subject.repository == "octo-org/octo-repo" && subject.ref == "refs/heads/main"`,
				Claims:    map[string]string{"repository": `subject.repository`},
			},
			in:   ghIn,
			want: Result{Allowed: true, Claims: map[string]any{"repository": "octo-org/octo-repo"}},
		},
		{
			name: "GitHub Actions: reusable workflow of the owner",
			p: store.Policy{
				Subject:   `"repo:" + subject.repository + "@" + subject.ref`,
				Condition: `subject.repository_owner == "octo-org" && subject.job_workflow_ref.startsWith("octo-org/octo-automation/.github/workflows/") && subject.job_workflow_ref.endsWith("@refs/heads/main")`,
				Claims: map[string]string{
					"workflow": `subject.job_workflow_ref.split("@")[0]`,
					"env":      `subject.environment`,
				},
			},
			in: ghIn,
			want: Result{Allowed: true, Subject: "repo:octo-org/octo-repo@refs/heads/main", Claims: map[string]any{
				"workflow": "octo-org/octo-automation/.github/workflows/oidc.yml", "env": "prod"}},
		},
		{
			name: "GitHub Actions: another branch is denied",
			p:    store.Policy{Condition: `subject.ref == "refs/heads/release"`, Claims: map[string]string{"r": `subject.repository`}},
			in:   ghIn,
			want: Result{Allowed: false, Denied: `subject.ref == "refs/heads/release"`},
		},
		{
			name: "Kubernetes: namespace and service account",
			p: store.Policy{
				Condition: `subject["kubernetes.io"].namespace == "prod" && subject["kubernetes.io"].serviceaccount.name == "deployer" && subject.sub.startsWith("system:serviceaccount:")`,
				Subject:   `subject["kubernetes.io"].serviceaccount.uid`,
				Claims: map[string]string{
					"pod":       `subject["kubernetes.io"].pod.name`,
					"namespace": `subject.sub.split(":")[2]`,
				},
			},
			in: k8sIn,
			want: Result{Allowed: true, Subject: "14ee3fa4-a7e2-420f-9f9a-dbc4507c3798", Claims: map[string]any{
				"pod": "deployer-5d8c7b9f4-x2x7k", "namespace": "prod"}},
		},
		{
			name: "Kubernetes: another namespace is denied",
			p:    store.Policy{Condition: `subject["kubernetes.io"].namespace in ["staging", "dev"]`},
			in:   k8sIn,
			want: Result{Allowed: false, Denied: `subject["kubernetes.io"].namespace in ["staging", "dev"]`},
		},
		{
			name: "JSON numbers against int literals",
			p: store.Policy{
				Condition: `subject.exp > 0 && subject.iat == 1700077413 && subject.exp - subject.iat > 3600 && subject["kubernetes.io"].warnafter < subject.exp && int(subject.nbf) == 1700077413`,
				Claims:    map[string]string{"lifetime": `int(subject.exp - subject.iat)`, "exp_copy": `subject.exp`},
			},
			in:   k8sIn,
			want: Result{Allowed: true, Claims: map[string]any{"lifetime": int64(31536000), "exp_copy": float64(1731613413)}},
		},
		{
			name: "json.Number claims (UseNumber), nested too",
			p: store.Policy{
				Condition: `subject.exp > 0 && subject.big == 9007199254740993 && subject.nested.list[0].f == 1.5`,
				Claims:    map[string]string{"big": `subject.big`, "f": `subject.nested.list[0].f`},
			},
			in:   &Input{Subject: numberClaims(t, `{"exp": 1700000000, "big": 9007199254740993, "nested": {"list": [{"f": 1.5}]}}`)},
			want: Result{Allowed: true, Claims: map[string]any{"big": int64(9007199254740993), "f": 1.5}},
		},
		{
			name: "has() on present and absent claims",
			p:    store.Policy{Condition: `has(subject.repository) && !has(subject.email) && !("kubernetes.io" in subject)`},
			in:   ghIn,
			want: Result{Allowed: true},
		},
		{
			name: "has() false denies",
			p:    store.Policy{Condition: `has(subject.email)`},
			in:   ghIn,
			want: Result{Allowed: false, Denied: `has(subject.email)`},
		},
		{
			name: "optional claim absent is not set, present is",
			p:    store.Policy{Claims: map[string]string{"email": `subject.?email`, "actor": `subject.?actor`, "or": `subject.?email.orValue("none")`}},
			in:   ghIn,
			want: Result{Allowed: true, Claims: map[string]any{"actor": "octocat", "or": "none"}},
		},
		{
			name: "every optional claim absent: no claims map",
			p:    store.Policy{Claims: map[string]string{"email": `subject.?email`}},
			in:   ghIn,
			want: Result{Allowed: true},
		},
		{
			name: "no actor: empty map and empty issuer",
			p:    store.Policy{Condition: `!has(actor.sub) && size(actor) == 0 && actor_issuer == ""`},
			in:   ghIn,
			want: Result{Allowed: true},
		},
		{
			name: "actor present",
			p:    store.Policy{Condition: `actor.sub == "system:serviceaccount:prod:deployer" && actor_issuer == "https://k8s"`, Claims: map[string]string{"via": `actor["kubernetes.io"].namespace`}},
			in:   &Input{Subject: gh, Actor: k8s, ActorIssuer: "https://k8s"},
			want: Result{Allowed: true, Claims: map[string]any{"via": "prod"}},
		},
		{
			name: "nil subject is an empty map",
			p:    store.Policy{Condition: `size(subject) == 0 && subject_issuer == ""`},
			in:   &Input{},
			want: Result{Allowed: true},
		},
		{
			name: "nil input is all empty",
			p:    store.Policy{Condition: `size(subject) == 0 && size(request.scope) == 0 && client.id == ""`},
			in:   nil,
			want: Result{Allowed: true},
		},
		{
			name: "client and request",
			p: store.Policy{
				Condition: `client.id == "c-1" && client.account == "acct-1" && client.name == "deployer" && "https://api.example" in request.audiences && size(request.resources) == 0`,
				Scope:     `request.scope.filter(s, s.startsWith("repo:"))`,
			},
			in:   ghIn,
			want: Result{Allowed: true, Scopes: []string{"repo:read", "repo:write"}},
		},
		{
			name: "scope literal and empty scope",
			p:    store.Policy{Scope: `subject.repository_owner == "octo-org" ? ["read", "write"] : []`},
			in:   ghIn,
			want: Result{Allowed: true, Scopes: []string{"read", "write"}},
		},
		{
			name: "empty scope list is not nil",
			p:    store.Policy{Scope: `[]`},
			in:   ghIn,
			want: Result{Allowed: true, Scopes: []string{}},
		},
		{
			name: "scope from a dyn claim",
			p:    store.Policy{Scope: `subject.groups.map(g, "group:" + g)`},
			in:   &Input{Subject: claims(t, `{"groups": ["a", "b"]}`)},
			want: Result{Allowed: true, Scopes: []string{"group:a", "group:b"}},
		},
		{
			name: "condition of a dyn bool claim",
			p:    store.Policy{Condition: `subject.email_verified`},
			in:   &Input{Subject: claims(t, `{"email_verified": false}`)},
			want: Result{Allowed: false, Denied: `subject.email_verified`},
		},
		{
			name: "claim values converted to JSON values",
			p: store.Policy{Claims: map[string]string{
				"int":       `1 + 2`,
				"uint":      `3u`,
				"double":    `1.5`,
				"bool":      `true`,
				"null":      `null`,
				"list":      `[1, "a", [true]]`,
				"map":       `{"a": {"b": [1.5]}, "c": null}`,
				"time":      `timestamp("2026-01-02T03:04:05.5Z")`,
				"duration":  `duration("1h30m")`,
				"copy":      `subject["kubernetes.io"].serviceaccount`,
				"audiences": `subject.aud`,
			}},
			in: k8sIn,
			want: Result{Allowed: true, Claims: map[string]any{
				"int":       int64(3),
				"uint":      uint64(3),
				"double":    1.5,
				"bool":      true,
				"null":      nil,
				"list":      []any{int64(1), "a", []any{true}},
				"map":       map[string]any{"a": map[string]any{"b": []any{1.5}}, "c": nil},
				"time":      "2026-01-02T03:04:05.5Z",
				"duration":  "5400s",
				"copy":      map[string]any{"name": "deployer", "uid": "14ee3fa4-a7e2-420f-9f9a-dbc4507c3798"},
				"audiences": []any{"https://sts.example"},
			}},
		},
		{
			name: "extensions: strings, lists, sets",
			p: store.Policy{
				Condition: `sets.contains(["octo-org", "other"], [subject.repository_owner]) && subject.repository.split("/").size() == 2`,
				Claims: map[string]string{
					"sorted": `["b", "a", "b"].distinct().sort()`,
					"upper":  `subject.actor.upperAscii()`,
					"joined": `request.scope.join(" ")`,
				},
			},
			in: ghIn,
			want: Result{Allowed: true, Claims: map[string]any{
				"sorted": []any{"a", "b"}, "upper": "OCTOCAT", "joined": "repo:read repo:write admin"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := mustCompile(t, tc.p)
			got, err := prog.Eval(tc.in, false)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Eval\n got %#v\nwant %#v", got, tc.want)
			}
			// The result must be what the token will carry: it
			// encodes as JSON.
			if _, err := json.Marshal(got.Claims); err != nil {
				t.Errorf("claims do not encode: %v", err)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	in := &Input{Subject: claims(t, `{"sub": "s", "groups": ["a", 1], "n": 1, "name": "", "big": [`+strings.Repeat("1,", 999)+`1]}`)}
	for _, tc := range []struct {
		name string
		p    store.Policy
		// want is the exact error.
		want string
		// res is the partial result returned with the error.
		res Result
	}{
		{"missing claim in a claim rule", store.Policy{Claims: map[string]string{"repo": `subject.repository`}},
			`client "c-1": claim repo: no such key: repository`, Result{Allowed: true}},
		{"missing nested claim", store.Policy{Condition: `subject["kubernetes.io"].namespace == "prod"`},
			`client "c-1": condition: no such key: kubernetes.io`, Result{Allowed: true}},
		{"condition of a dyn string", store.Policy{Condition: `subject.sub`},
			`client "c-1": condition: the condition gave a string, not a bool`, Result{Allowed: true}},
		{"wrong operand type", store.Policy{Condition: `subject.sub > 1`},
			`client "c-1": condition: no such overload`, Result{Allowed: true}},
		{"scope of mixed list", store.Policy{Scope: `subject.groups`},
			`client "c-1": scope: the scope rule's list holds a double, not only strings`, Result{Allowed: true}},
		{"scope of a dyn string", store.Policy{Scope: `subject.sub`},
			`client "c-1": scope: the scope rule gave a string, not a list of strings`, Result{Allowed: true}},
		{"subject of a dyn number", store.Policy{Subject: `subject.n`},
			`client "c-1": subject: the subject rule gave a double, not a string`, Result{Allowed: true}},
		{"subject empty", store.Policy{Subject: `subject.name`},
			`client "c-1": subject: the subject rule gave an empty string`, Result{Allowed: true}},
		{"claim of dyn bytes", store.Policy{Claims: map[string]string{"b": `dyn(b"x")`}},
			`client "c-1": claim b: bytes have no JSON form (use base64 or string())`, Result{Allowed: true}},
		{"claim NaN", store.Policy{Claims: map[string]string{"nan": `0.0 / 0.0`}},
			`client "c-1": claim nan: the value NaN has no JSON form`, Result{Allowed: true}},
		{"claim map with dyn int keys", store.Policy{Claims: map[string]string{"m": `{dyn(1): "a"}`}},
			`client "c-1": claim m: a map key is a int; JSON object keys are strings`, Result{Allowed: true}},
		{"division by zero", store.Policy{Claims: map[string]string{"x": `1 / (size(subject.name))`}},
			`client "c-1": claim x: division by zero`, Result{Allowed: true}},
		{"an error after the subject keeps it", store.Policy{Subject: `subject.sub`, Condition: `subject.nope`},
			`client "c-1": condition: no such key: nope`, Result{Allowed: true, Subject: "s"}},
		{"an error after the scope keeps it", store.Policy{Scope: `["a"]`, Claims: map[string]string{"x": `subject.nope`}},
			`client "c-1": claim x: no such key: nope`, Result{Allowed: true, Scopes: []string{"a"}}},
		{"cost limit", store.Policy{Claims: map[string]string{"sums": `subject.big.map(x, subject.big.map(y, x + y))`}},
			`client "c-1": claim sums: operation cancelled: actual cost limit exceeded`, Result{Allowed: true}},
		{"cost limit in lists.range", store.Policy{Condition: `lists.range(5000).all(i, lists.range(5000).all(j, i + j >= 0))`},
			`client "c-1": condition: operation cancelled: actual cost limit exceeded`, Result{Allowed: true}},
		{"cost limit in a string function", store.Policy{Claims: map[string]string{"s": `subject.big.map(x, string(x)).join(",").replace("1", "11").replace("1", "11").replace("1", "11").replace("1", "11").replace("1", "11")`}},
			`client "c-1": claim s: operation cancelled: actual cost limit exceeded`, Result{Allowed: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := mustCompile(t, tc.p)
			start := time.Now()
			res, err := prog.Eval(in, false)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Eval succeeded: %+v; want %q", res, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %q\nwant %q", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Owner != owner {
				t.Errorf("error is not an *Error naming the owner: %#v", err)
			}
			var cancelled interpreter.EvalCancelledError
			if strings.HasPrefix(tc.name, "cost limit") && (!errors.As(err, &cancelled) || cancelled.Cause != interpreter.CostLimitExceeded) {
				t.Errorf("error %#v does not unwrap to cel-go's cost limit cancellation", err)
			}
			if !reflect.DeepEqual(res, tc.res) {
				t.Errorf("result with the error\n got %#v\nwant %#v", res, tc.res)
			}
			// The cost limit stops a rule early: far less than the
			// million operations these rules would otherwise run.
			if elapsed > 500*time.Millisecond {
				t.Errorf("Eval took %v", elapsed)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	in := &Input{Subject: claims(t, githubClaims), Request: Request{Scope: []string{"a", "b"}}}
	p := store.Policy{
		Subject:   `subject.repository`,
		Condition: `subject.ref == "refs/heads/main"`,
		Scope:     `request.scope`,
		Claims:    map[string]string{"z": `subject.actor`, "a": `subject.run_attempt`, "m": `subject.?missing`},
	}
	res, err := mustCompile(t, p).Eval(in, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{Rule: "subject", Expr: `subject.repository`, Value: "octo-org/octo-repo"},
		{Rule: "condition", Expr: `subject.ref == "refs/heads/main"`, Value: true},
		{Rule: "scope", Expr: `request.scope`, Value: []string{"a", "b"}},
		{Rule: "claim a", Expr: `subject.run_attempt`, Value: "2"},
		{Rule: "claim m", Expr: `subject.?missing`, Value: nil},
		{Rule: "claim z", Expr: `subject.actor`, Value: "octocat"},
	}
	if !reflect.DeepEqual(res.Steps, want) {
		t.Errorf("steps\n got %#v\nwant %#v", res.Steps, want)
	}
	if _, err := json.Marshal(res.Steps); err != nil {
		t.Errorf("steps do not encode: %v", err)
	}

	// Without explain there are no steps.
	res, err = mustCompile(t, p).Eval(in, false)
	if err != nil || res.Steps != nil {
		t.Errorf("Eval(explain=false) steps %v, err %v", res.Steps, err)
	}

	// A false condition is the last step.
	p.Condition = `subject.ref == "refs/heads/dev"`
	res, err = mustCompile(t, p).Eval(in, true)
	if err != nil {
		t.Fatal(err)
	}
	want = []Step{
		{Rule: "subject", Expr: `subject.repository`, Value: "octo-org/octo-repo"},
		{Rule: "condition", Expr: `subject.ref == "refs/heads/dev"`, Value: false},
	}
	if !reflect.DeepEqual(res.Steps, want) || res.Allowed || res.Denied != p.Condition || res.Scopes != nil || res.Claims != nil {
		t.Errorf("denied: %#v", res)
	}

	// An error is the last step, with its message.
	p.Condition = `subject.nope`
	res, err = mustCompile(t, p).Eval(in, true)
	if err == nil {
		t.Fatal("no error")
	}
	want = []Step{
		{Rule: "subject", Expr: `subject.repository`, Value: "octo-org/octo-repo"},
		{Rule: "condition", Expr: `subject.nope`, Err: "no such key: nope"},
	}
	if !reflect.DeepEqual(res.Steps, want) {
		t.Errorf("steps\n got %#v\nwant %#v", res.Steps, want)
	}
}

// TestEvalConcurrent: one Program serves every request at once (run with
// -race).
func TestEvalConcurrent(t *testing.T) {
	prog := mustCompile(t, store.Policy{
		Condition: `subject.n % 2 == 0`,
		Claims:    map[string]string{"n": `subject.n`, "c": `client.id`},
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				n := g*1000 + i
				res, err := prog.Eval(&Input{Subject: map[string]any{"n": n}, Client: Client{ID: fmt.Sprint(n)}}, false)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed != (n%2 == 0) || res.Allowed && (res.Claims["n"] != int64(n) || res.Claims["c"] != fmt.Sprint(n)) {
					t.Errorf("n=%d: %+v", n, res)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestParseClaimFlags(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  map[string]string
		err   string
	}{
		{nil, nil, ""},
		{[]string{`repo=subject.repository`}, map[string]string{"repo": "subject.repository"}, ""},
		{[]string{`main=subject.ref == "refs/heads/main"`, `a=1`}, map[string]string{"main": `subject.ref == "refs/heads/main"`, "a": "1"}, ""},
		{[]string{`x==1`}, map[string]string{"x": "=1"}, ""},
		{[]string{`repo`}, nil, `claim "repo": want NAME=EXPR`},
		{[]string{`=subject.sub`}, nil, `claim "": the claim name is empty`},
		{[]string{`a b=1`}, nil, `claim "a b": the claim name "a b" has a space or an unprintable character`},
		{[]string{`repo=`}, nil, `claim repo: the expression is empty`},
		{[]string{`repo=  `}, nil, `claim repo: the expression is empty`},
		{[]string{`a=1`, `a=2`}, nil, `claim a: given twice`},
		{[]string{`sub=subject.email`}, nil, `claim sub: "sub" is a reserved claim`},
	} {
		got, err := ParseClaimFlags(tc.flags)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("ParseClaimFlags(%q) error %v; want %q", tc.flags, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseClaimFlags(%q) = %q, %v; want %q", tc.flags, got, err, tc.want)
		}
	}
}

// benchInput is a Kubernetes service account token's claims, decoded
// from JSON as the token endpoint decodes them.
func benchInput(b *testing.B) *Input {
	return &Input{
		Subject:       claims(b, kubernetesClaims),
		SubjectIssuer: "https://kubernetes.default.svc.cluster.local",
		Client:        Client{ID: "c-1", Account: "acct-1", Name: "deployer"},
		Request:       Request{Audiences: []string{"https://api.example"}, Scope: []string{"read"}},
	}
}

const benchCondition = `subject["kubernetes.io"].namespace == "prod" && subject.sub.startsWith("system:serviceaccount:")`

// BenchmarkEvalCondition is what a CEL condition adds to an exchange
// (issue 11: a condition plus a claim rule within 5 µs).
func BenchmarkEvalCondition(b *testing.B) {
	prog := mustCompile(b, store.Policy{Condition: benchCondition})
	in := benchInput(b)
	b.ReportAllocs()
	for b.Loop() {
		res, err := prog.Eval(in, false)
		if err != nil || !res.Allowed {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkEvalConditionAndClaim adds a claim rule copying a nested claim.
func BenchmarkEvalConditionAndClaim(b *testing.B) {
	prog := mustCompile(b, store.Policy{
		Condition: benchCondition,
		Claims:    map[string]string{"pod": `subject["kubernetes.io"].pod.name`},
	})
	in := benchInput(b)
	b.ReportAllocs()
	for b.Loop() {
		res, err := prog.Eval(in, false)
		if err != nil || !res.Allowed || res.Claims["pod"] != "deployer-5d8c7b9f4-x2x7k" {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkEvalGitHubConditionAndClaim is the GitHub Actions recipe: a
// condition on repository and ref, and a claim rule copying repository.
func BenchmarkEvalGitHubConditionAndClaim(b *testing.B) {
	prog := mustCompile(b, store.Policy{
		Condition: `subject.repository == "octo-org/octo-repo" && subject.ref == "refs/heads/main"`,
		Claims:    map[string]string{"repository": `subject.repository`},
	})
	in := &Input{Subject: claims(b, githubClaims), SubjectIssuer: "https://token.actions.githubusercontent.com"}
	b.ReportAllocs()
	for b.Loop() {
		res, err := prog.Eval(in, false)
		if err != nil || !res.Allowed || res.Claims["repository"] != "octo-org/octo-repo" {
			b.Fatal(res, err)
		}
	}
}
