package celpolicy

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// toJSON converts a CEL value to the plain Go value encoding/json writes
// as the same JSON: maps become map[string]any, lists []any, ints int64,
// uints uint64, doubles float64, null nil. Timestamps become RFC 3339
// strings (UTC) and durations CEL's own form ("90s"), which duration()
// and timestamp() read back. Bytes, NaN and infinities, types and maps
// with keys other than strings have no JSON form and are refused.
func toJSON(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.Bool:
		return bool(v), nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		return uint64(v), nil
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("the value %v has no JSON form", f)
		}
		return f, nil
	case types.String:
		return string(v), nil
	case types.Null:
		return nil, nil
	case types.Timestamp:
		return v.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return v.ConvertToType(types.StringType).Value(), nil
	case types.Bytes:
		return nil, errors.New("bytes have no JSON form (use base64 or string())")
	case *types.Optional:
		if !v.HasValue() {
			return nil, nil
		}
		return toJSON(v.GetValue())
	case *types.Err:
		return nil, v
	case traits.Mapper:
		n, _ := v.Size().(types.Int)
		m := make(map[string]any, int(n))
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("a map key is a %s; JSON object keys are strings", k.Type().TypeName())
			}
			e, err := toJSON(v.Get(k))
			if err != nil {
				return nil, err
			}
			m[string(ks)] = e
		}
		return m, nil
	case traits.Lister:
		n, _ := v.Size().(types.Int)
		l := make([]any, 0, int(n))
		for it := v.Iterator(); it.HasNext() == types.True; {
			e, err := toJSON(it.Next())
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
		return l, nil
	}
	return nil, fmt.Errorf("a %s has no JSON form", v.Type().TypeName())
}
