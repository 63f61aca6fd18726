package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// didYouMean returns ` (did you mean "KEY"?)` naming the known key
// nearest to k, or "" when none is near (an edit distance above a third
// of the key's length, at least 2).
func didYouMean(k string, known []string) string {
	best, bestD := "", -1
	for _, c := range known {
		d := editDistance(strings.ToLower(k), c)
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(k)/3) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, in bytes (keys
// are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// unknownField matches yaml.v3's message for a key that KnownFields
// refuses.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)

func onlyUnknownFields(te *yaml.TypeError) bool {
	for _, e := range te.Errors {
		if !unknownField.MatchString(e) {
			return false
		}
	}
	return len(te.Errors) > 0
}

// entryTypes are the types of the file's structured entries, by the name
// yaml.v3 gives them in its errors, for suggestions.
var entryTypes = map[string]reflect.Type{
	"config.IssuerEntry":        reflect.TypeFor[IssuerEntry](),
	"config.DeviceProfileEntry": reflect.TypeFor[DeviceProfileEntry](),
}

// unknownFieldErrors reports each unknown key of a structured entry (an
// issuer's) with the nearest key such an entry has.
func unknownFieldErrors(path string, te *yaml.TypeError) error {
	var errs []error
	for _, e := range te.Errors {
		m := unknownField.FindStringSubmatch(e)
		var known []string
		if t, ok := entryTypes[m[3]]; ok {
			for i := range t.NumField() {
				if tag := t.Field(i).Tag.Get("yaml"); tag != "" && tag != "-" {
					known = append(known, strings.Split(tag, ",")[0])
				}
			}
		}
		errs = append(errs, fmt.Errorf("%s: line %s: field %s not found in type %s%s", path, m[1], m[2], m[3], didYouMean(m[2], known)))
	}
	return errors.Join(errs...)
}
