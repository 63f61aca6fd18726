package sqlite

import (
	"encoding/json"
	"fmt"
	"time"
)

// The column encodings shared with the PostgreSQL backend. Keeping them here,
// and only here, is what keeps the two schemas interchangeable.

// encTime stores t as unix microseconds; the zero time is 0.
func encTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// decTime is the inverse of encTime and returns UTC.
func decTime(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// encList stores a string list as a JSON array; nil and empty are "[]".
func encList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, err := json.Marshal(l)
	if err != nil {
		// Marshalling a []string cannot fail.
		panic(err)
	}
	return string(b)
}

// decList is the inverse of encList; an empty list decodes to nil.
func decList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("sqlite: decode string list %q: %w", s, err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// encBytes stores nil as NULL.
func encBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// encBool stores a boolean as 0 or 1.
func encBool(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// decBool is the inverse of encBool.
func decBool(v int64) bool { return v != 0 }

// encDuration stores a duration as nanoseconds.
func encDuration(d time.Duration) int64 { return int64(d) }

// decDuration is the inverse of encDuration.
func decDuration(v int64) time.Duration { return time.Duration(v) }
