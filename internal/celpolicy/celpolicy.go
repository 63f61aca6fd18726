// Package celpolicy compiles and evaluates the operator's CEL rules
// (github.com/google/cel-go) attached to trusted issuers and clients
// (store.Policy): a condition that must hold to issue, a scope rule that
// bounds the issued scope, claim rules that copy or compute claims into the
// issued token, and (issuers) the subject rule.
//
// Expressions are type-checked when compiled, so a bad one is refused when
// it is saved or loaded, with a message naming its owner, the rule and the
// position. Evaluation has a cost limit; it is pure (no I/O) and fast
// enough for the token endpoint's hot path.
//
// Variables visible to every expression:
//
//	subject         map(string, dyn)  the subject token's claims
//	subject_issuer  string            the issuer that vouched for it
//	actor           map(string, dyn)  the actor token's claims ({} if none)
//	actor_issuer    string            its issuer ("" if none)
//	client          map(string, string)  id, account, name
//	request         map(string, list(string))  audiences, resources, scope
//	device          map(string, dyn)  a radio device's identity ({} but for
//	                a device's token): fcc_id, serial, frn, role, profile,
//	                subject
//
// Besides the standard library, expressions may use the cel-go extensions
// for strings (`"a,b".split(",")`, `lowerAscii`, ...), lists (`flatten`,
// `distinct`, `sort`, ...), sets (`sets.contains`, `sets.intersects`),
// math (`math.greatest`, ...) and optional values (`subject.?email`,
// `orValue`). None of them performs I/O or reads the clock.
package celpolicy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"

	"github.com/keybridge/sts/internal/store"
)

// Input is what the rules see of one request.
type Input struct {
	// Subject holds the subject token's claims as encoding/json decodes
	// them: numbers as float64, or as json.Number with UseNumber (then
	// integers stay exact); Go integer types are accepted too.
	Subject       map[string]any
	SubjectIssuer string
	// Actor is nil when no actor token was presented.
	Actor       map[string]any
	ActorIssuer string
	Client      Client
	Request     Request
	// Device is the identity of the device a token is issued for (issue
	// 14); nil otherwise.
	Device map[string]any
}

// Client is the calling client as the rules see it.
type Client struct{ ID, Account, Name string }

// Request is the request as the rules see it.
type Request struct{ Audiences, Resources, Scope []string }

// ReservedClaims may not be set by a claim rule: the server writes them.
// "device" is written by the device paths only (issue 14): a resource
// server (resource.DeviceOf) takes it for a CBSD's identity, so a client's
// or a trusted issuer's rule that set it would forge one.
var ReservedClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "act", "may_act", "cnf", "client_id", "scope", "family_id", "sub_id", "token_type", "device"}

// Limits on what an operator may write. An expression is short (a rule,
// not a program); a claim name is an ordinary JSON member name.
const (
	// MaxExprLen is the longest expression accepted, in bytes.
	MaxExprLen = 4 << 10
	// MaxClaimNameLen is the longest claim name accepted, in bytes.
	MaxClaimNameLen = 64
	// CostLimit bounds one rule's evaluation, in cel-go's cost units
	// (roughly one per operation, one per element a comprehension or a
	// string function walks). Ordinary rules cost tens; a rule that hits
	// the limit is refused with an error rather than let run, so that a
	// rule over a large claim cannot slow the token endpoint down.
	CostLimit = 10_000
	// maxRangeSize bounds lists.range(n): with the cost limit above, no
	// rule can use a longer list anyway.
	maxRangeSize = CostLimit
)

// Rule names, as errors and Steps show them. A claim rule is
// "claim NAME".
const (
	RuleCondition = "condition"
	RuleScope     = "scope"
	RuleSubject   = "subject"
	ruleClaim     = "claim "
)

// Error is a rule refused when compiled or failed when evaluated. Compile
// returns one per bad rule (joined with errors.Join); Eval returns one.
type Error struct {
	// Owner names whose rule it is, as given to Compile.
	Owner string
	// Rule is RuleCondition, RuleScope, RuleSubject or "claim NAME".
	Rule string
	// Msg says what is wrong; syntax and type errors start with their
	// position in the expression (line:column, from 1).
	Msg string
	// cause is cel-go's evaluation error, if any: errors.As finds
	// through it, for example, interpreter.EvalCancelledError with
	// Cause CostLimitExceeded.
	cause error
}

// Error renders e as `client "c-1": condition: 1:9: undeclared reference
// to 'subjct'`.
func (e *Error) Error() string { return e.Owner + ": " + e.Rule + ": " + e.Msg }

// Unwrap returns the evaluation error e reports, if any.
func (e *Error) Unwrap() error { return e.cause }

// Program is a compiled store.Policy. It is safe for concurrent use.
type Program struct {
	owner     string
	subject   *rule
	condition *rule
	scope     *rule
	// claims are in the order of their names, so that evaluation and
	// explanations are reproducible.
	claims []*rule
}

// rule is one compiled expression.
type rule struct {
	name  string // as Error.Rule
	claim string // the claim name, for claim rules
	expr  string
	prg   cel.Program
}

// Step is one rule's evaluation, for explanations.
type Step struct {
	Rule  string // "condition", "scope", "subject", "claim NAME"
	Expr  string
	Value any    // the value, as JSON would show it
	Err   string // the evaluation error, if any
}

// Result is what a Program decided.
type Result struct {
	// Allowed is the condition's value (true without a condition).
	Allowed bool
	// Denied is the text of the condition that evaluated to false ("" when
	// Allowed), for the refusal's audit record and explanation.
	Denied string
	// Subject is the subject rule's value ("" without one).
	Subject string
	// Scopes is the scope rule's value; nil without one.
	Scopes []string
	// Claims are the claim rules' values (JSON-encodable). A claim rule
	// whose value is an empty optional (`subject.?email`) sets nothing.
	Claims map[string]any
	// Steps is filled when Eval is asked to explain.
	Steps []Step
}

// env is the one CEL environment every rule is compiled in. It is built
// once, on first use, and never changed afterwards (a *cel.Env is safe for
// concurrent use).
var env = sync.OnceValues(newEnv)

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("subject", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("subject_issuer", cel.StringType),
		cel.Variable("actor", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("actor_issuer", cel.StringType),
		cel.Variable("client", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("request", cel.MapType(cel.StringType, cel.ListType(cel.StringType))),
		cel.Variable("device", cel.MapType(cel.StringType, cel.DynType)),
		// JSON numbers are doubles; let `subject.exp > 0` and
		// `1 < 2.0` type-check as the operator means them.
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Lists(ext.ListsMaxRangeSize(maxRangeSize)),
		ext.Sets(),
		ext.Math(),
		// Literal regular expressions, timestamps and durations are
		// checked when compiled, not on the first request. (Not
		// cel.ExtendedValidations: it refuses mixed-type literals, which
		// JSON claims such as {"ns": "prod", "n": 1} need.)
		cel.ASTValidators(
			cel.ValidateRegexLiterals(),
			cel.ValidateTimestampLiterals(),
			cel.ValidateDurationLiterals(),
		),
	)
}

// Compile type-checks and compiles p. owner names whose rules these are,
// e.g. `issuer "github"` or `client "c-123"`; errors name it, the rule and
// the position in the expression (line:column). Every bad rule is
// reported, each as an *Error, joined with errors.Join.
//
// A condition must be a bool, a scope rule a list of strings, a subject
// rule a string and a claim rule any JSON value (not bytes); an expression
// whose type is only known at run time (`subject.admin`) is accepted and
// its value checked when evaluated. A nil Program (for a zero p) allows
// everything.
func Compile(owner string, p store.Policy) (*Program, error) {
	if p.IsZero() {
		return nil, nil
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("celpolicy: environment: %w", err)
	}
	prog := &Program{owner: owner}
	var errs []error
	add := func(name, claim, expr string, want *cel.Type) *rule {
		r, err := compileRule(e, owner, name, expr, want)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		r.claim = claim
		return r
	}
	if p.Subject != "" {
		prog.subject = add(RuleSubject, "", p.Subject, cel.StringType)
	}
	if p.Condition != "" {
		prog.condition = add(RuleCondition, "", p.Condition, cel.BoolType)
	}
	if p.Scope != "" {
		prog.scope = add(RuleScope, "", p.Scope, cel.ListType(cel.StringType))
	}
	names := make([]string, 0, len(p.Claims))
	for name := range p.Claims {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := CheckClaimName(name); err != nil {
			errs = append(errs, &Error{Owner: owner, Rule: claimRule(name), Msg: err.Error()})
			continue
		}
		if r := add(claimRule(name), name, p.Claims[name], nil); r != nil {
			prog.claims = append(prog.claims, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return prog, nil
}

// CheckClaimName reports why name may not be set by a claim rule: it is
// empty, longer than MaxClaimNameLen, not printable UTF-8 without spaces,
// or one of ReservedClaims.
func CheckClaimName(name string) error {
	switch {
	case name == "":
		return errors.New("the claim name is empty")
	case len(name) > MaxClaimNameLen:
		return fmt.Errorf("the claim name is longer than %d bytes", MaxClaimNameLen)
	case !utf8.ValidString(name):
		return errors.New("the claim name is not valid UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }):
		return fmt.Errorf("the claim name %q has a space or an unprintable character", name)
	case slices.ContainsFunc(ReservedClaims, func(r string) bool { return strings.EqualFold(r, name) }):
		// Case-insensitively: claim names are case-sensitive (RFC 7519
		// §4), but Go's encoding/json matches members to fields without
		// regard to case, the last duplicate winning, so "SUB" written
		// after "sub" would become the subject of whoever decodes the
		// token into a struct (this server re-validating it, or a
		// resource server in Go).
		return fmt.Errorf("%q is a reserved claim, written by the server (reserved, in any case: %s)", name, strings.Join(ReservedClaims, " "))
	}
	return nil
}

// claimRule is the rule name of the claim rule for name: "claim NAME",
// with NAME quoted when it would be hard to read (empty, spaces,
// unprintable characters).
func claimRule(name string) string {
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		return ruleClaim + strconv.Quote(name)
	}
	return ruleClaim + name
}

// compileRule parses, checks and plans one expression. want is the type
// its value must have (nil: any JSON value).
func compileRule(e *cel.Env, owner, name, expr string, want *cel.Type) (*rule, error) {
	fail := func(format string, args ...any) error {
		return &Error{Owner: owner, Rule: name, Msg: fmt.Sprintf(format, args...)}
	}
	if len(expr) > MaxExprLen {
		return nil, fail("the expression is %d bytes long, more than %d", len(expr), MaxExprLen)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, fail("the expression is blank")
	}
	ast, iss := e.CompileSource(common.NewStringSource(expr, name))
	if iss.Err() != nil {
		msgs := make([]string, 0, len(iss.Errors()))
		for _, ce := range iss.Errors() {
			// Location columns are 0-based; people count from 1, as
			// cel-go's own display does.
			msg := strings.TrimSuffix(ce.Message, " (in container '')")
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s", ce.Location.Line(), ce.Location.Column()+1, msg))
		}
		return nil, fail("%s", strings.Join(msgs, "; "))
	}
	got := ast.OutputType()
	if want != nil && !fits(want, got) {
		return nil, fail("its type is %s; a %s rule must be %s", cel.FormatCELType(got), name, cel.FormatCELType(want))
	}
	if want == nil && !jsonable(got) {
		return nil, fail("its type is %s, which a JSON claim cannot hold", cel.FormatCELType(got))
	}
	prg, err := e.Program(ast,
		cel.CostLimit(CostLimit),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		// OptOptimize folds constants, so `1/0` fails here.
		return nil, fail("%v", err)
	}
	return &rule{name: name, expr: expr, prg: prg}, nil
}

// fits reports whether a value of the checked type got may be a want: the
// same type, or one known only at run time (dyn, anywhere inside).
func fits(want, got *cel.Type) bool {
	switch got.Kind() {
	case types.DynKind, types.AnyKind, types.TypeParamKind:
		return true
	}
	if want.Kind() != got.Kind() || want.TypeName() != got.TypeName() || len(want.Parameters()) != len(got.Parameters()) {
		return false
	}
	for i, wp := range want.Parameters() {
		if !fits(wp, got.Parameters()[i]) {
			return false
		}
	}
	return true
}

// jsonable reports whether a value of the checked type t can be written as
// JSON (maybe after a conversion: timestamps and durations become
// strings). Bytes have no JSON form; types and errors are not values.
func jsonable(t *cel.Type) bool {
	switch t.Kind() {
	case types.BytesKind, types.TypeKind, types.ErrorKind, types.UnknownKind, types.OpaqueKind:
		if t.Kind() == types.OpaqueKind && t.TypeName() == "optional_type" {
			return jsonable(t.Parameters()[0])
		}
		return false
	case types.StructKind:
		// Protocol buffer messages: none is declared in the
		// environment, but a well-known type literal could appear.
		return false
	case types.MapKind:
		// JSON object member names are strings.
		if k := t.Parameters()[0].Kind(); k != types.StringKind && k != types.DynKind {
			return false
		}
	}
	for _, p := range t.Parameters() {
		if !jsonable(p) {
			return false
		}
	}
	return true
}

// Eval evaluates every rule of p for in. A nil Program allows everything
// and sets nothing. An evaluation error (a missing claim, a wrong type,
// the cost limit) is returned as an error naming the owner and the rule;
// the request must then be refused.
//
// The rules are evaluated in this order: subject, condition, scope, claims
// (by name). A false condition is not an error: the Result has Allowed
// false and Denied set, and the later rules are not evaluated. With
// explain, Result.Steps lists each rule evaluated, up to and including
// the first error or false condition.
func (p *Program) Eval(in *Input, explain bool) (Result, error) {
	if p == nil {
		return Result{Allowed: true}, nil
	}
	if in == nil {
		in = &Input{}
	}
	act := newActivation(in)
	res := Result{Allowed: true}
	var steps *[]Step
	if explain {
		steps = &res.Steps
	}
	if r := p.subject; r != nil {
		v, err := p.run(act, r, subjectValue, steps)
		if err != nil {
			return res, err
		}
		res.Subject = v.(string)
	}
	if r := p.condition; r != nil {
		v, err := p.run(act, r, conditionValue, steps)
		if err != nil {
			return res, err
		}
		if !v.(bool) {
			res.Allowed = false
			res.Denied = r.expr
			return res, nil
		}
	}
	if r := p.scope; r != nil {
		v, err := p.run(act, r, scopeValue, steps)
		if err != nil {
			return res, err
		}
		res.Scopes = v.([]string)
	}
	for _, r := range p.claims {
		v, err := p.run(act, r, claimValue, steps)
		if err != nil {
			return res, err
		}
		if _, ok := v.(absentClaim); ok {
			continue
		}
		if res.Claims == nil {
			res.Claims = make(map[string]any, len(p.claims))
		}
		res.Claims[r.claim] = v
	}
	return res, nil
}

// run evaluates r and converts its value with conv; with steps, it
// records the step. An error is returned as an *Error.
func (p *Program) run(act *activation, r *rule, conv func(ref.Val) (any, error), steps *[]Step) (any, error) {
	out, _, err := r.prg.Eval(act)
	var v any
	if err == nil {
		v, err = conv(out)
	}
	var e *Error
	if err != nil {
		e = &Error{Owner: p.owner, Rule: r.name, Msg: err.Error(), cause: err}
	}
	if steps != nil {
		s := Step{Rule: r.name, Expr: r.expr, Value: v}
		if _, ok := v.(absentClaim); ok {
			s.Value = nil // an empty optional: the claim is not set
		}
		if e != nil {
			s.Err = e.Msg
		}
		*steps = append(*steps, s)
	}
	if e != nil {
		return nil, e
	}
	return v, nil
}

// Owner returns the owner p was compiled for ("" for a nil Program).
func (p *Program) Owner() string {
	if p == nil {
		return ""
	}
	return p.owner
}

func conditionValue(v ref.Val) (any, error) {
	b, ok := v.(types.Bool)
	if !ok {
		return nil, fmt.Errorf("the condition gave a %s, not a bool", v.Type().TypeName())
	}
	return bool(b), nil
}

func subjectValue(v ref.Val) (any, error) {
	s, ok := v.(types.String)
	if !ok {
		return nil, fmt.Errorf("the subject rule gave a %s, not a string", v.Type().TypeName())
	}
	if s == "" {
		return nil, errors.New("the subject rule gave an empty string")
	}
	return string(s), nil
}

func scopeValue(v ref.Val) (any, error) {
	l, ok := v.(traits.Lister)
	if !ok {
		return nil, fmt.Errorf("the scope rule gave a %s, not a list of strings", v.Type().TypeName())
	}
	n, _ := l.Size().(types.Int)
	scopes := make([]string, 0, int(n))
	for it := l.Iterator(); it.HasNext() == types.True; {
		e := it.Next()
		s, ok := e.(types.String)
		if !ok {
			return nil, fmt.Errorf("the scope rule's list holds a %s, not only strings", e.Type().TypeName())
		}
		scopes = append(scopes, string(s))
	}
	return scopes, nil
}

// absentClaim is the value of a claim rule that gave an empty optional.
type absentClaim struct{}

func claimValue(v ref.Val) (any, error) {
	if o, ok := v.(*types.Optional); ok {
		if !o.HasValue() {
			return absentClaim{}, nil
		}
		v = o.GetValue()
	}
	return toJSON(v)
}
