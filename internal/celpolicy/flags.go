package celpolicy

import (
	"fmt"
	"strings"
)

// ParseClaimFlags parses the CLI's repeated `--claim NAME=EXPR` values
// into store.Policy.Claims. Each is split at its first '=' (an expression
// may hold '=' itself, as in `subject.ref == "refs/heads/main"`). A
// missing '=', a bad or reserved claim name (CheckClaimName), an empty
// expression or a name given twice is an error; the expressions are
// checked later, by Compile.
func ParseClaimFlags(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	claims := make(map[string]string, len(flags))
	for _, f := range flags {
		name, expr, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("claim %q: want NAME=EXPR", f)
		}
		if err := CheckClaimName(name); err != nil {
			return nil, fmt.Errorf("%s: %w", claimRule(name), err)
		}
		if strings.TrimSpace(expr) == "" {
			return nil, fmt.Errorf("%s: the expression is empty", claimRule(name))
		}
		if _, dup := claims[name]; dup {
			return nil, fmt.Errorf("%s: given twice", claimRule(name))
		}
		claims[name] = expr
	}
	return claims, nil
}
