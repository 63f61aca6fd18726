package celpolicy

import (
	"encoding/json"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// activation resolves the declared variables for one Eval. It is built
// once per Eval and shared by its rules; each variable is converted to a
// CEL value the first time a rule reads it, and kept for the next rule, so
// a rule that reads only subject costs one small wrapper and no copy of
// the claims (a map-based activation would build a map per request and
// convert every variable).
type activation struct {
	in *Input

	subject, actor, client, request, device ref.Val
}

var _ interpreter.Activation = (*activation)(nil)

func newActivation(in *Input) *activation { return &activation{in: in} }

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "subject":
		if a.subject == nil {
			a.subject = claimsValue(a.in.Subject)
		}
		return a.subject, true
	case "subject_issuer":
		return types.String(a.in.SubjectIssuer), true
	case "actor":
		if a.actor == nil {
			a.actor = claimsValue(a.in.Actor)
		}
		return a.actor, true
	case "actor_issuer":
		return types.String(a.in.ActorIssuer), true
	case "client":
		if a.client == nil {
			c := a.in.Client
			a.client = types.NewStringStringMap(claimsAdapter{}, map[string]string{
				"id": c.ID, "account": c.Account, "name": c.Name,
			})
		}
		return a.client, true
	case "request":
		if a.request == nil {
			r := a.in.Request
			ad := claimsAdapter{}
			a.request = types.NewRefValMap(ad, map[ref.Val]ref.Val{
				types.String("audiences"): types.NewStringList(ad, r.Audiences),
				types.String("resources"): types.NewStringList(ad, r.Resources),
				types.String("scope"):     types.NewStringList(ad, r.Scope),
			})
		}
		return a.request, true
	case "device":
		if a.device == nil {
			a.device = claimsValue(a.in.Device)
		}
		return a.device, true
	}
	return nil, false
}

// Parent implements interpreter.Activation: there is none.
func (a *activation) Parent() interpreter.Activation { return nil }

// claimsValue wraps a token's claims without copying them; nil (no actor
// token) is the empty map, so `has(actor.sub)` is false rather than an
// error.
func claimsValue(m map[string]any) ref.Val {
	if m == nil {
		m = map[string]any{}
	}
	return types.NewStringInterfaceMap(claimsAdapter{}, m)
}

// claimsAdapter converts claim values to CEL values as they are read.
// Beyond cel-go's default conversions it reads json.Number (claims
// decoded with json.Decoder.UseNumber): an integer becomes an int (no
// precision lost), any other number a double. Maps and lists keep this
// adapter for the values inside them.
type claimsAdapter struct{}

// NativeToValue implements types.Adapter.
func (a claimsAdapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case map[string]any:
		return types.NewStringInterfaceMap(a, v)
	case []any:
		return types.NewDynamicList(a, v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return types.Int(i)
		}
		f, err := v.Float64()
		if err != nil {
			return types.NewErr("the number %q is out of range", string(v))
		}
		return types.Double(f)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}
