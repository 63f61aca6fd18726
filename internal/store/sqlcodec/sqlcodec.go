package sqlcodec

import (
	"encoding/json"
	"fmt"
	"time"
)

// EncTime stores t as unix microseconds; the zero time is 0.
func EncTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// DecTime is the inverse of EncTime and returns UTC.
func DecTime(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// EncList stores a string list as a JSON array; nil and empty are "[]".
func EncList(l []string) string {
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

// DecList is the inverse of EncList; an empty list decodes to nil.
func DecList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode string list %q: %w", s, err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// EncBytes stores nil as NULL.
func EncBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// EncBool stores a boolean as 0 or 1.
func EncBool(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// DecBool is the inverse of EncBool.
func DecBool(v int64) bool { return v != 0 }

// EncDuration stores a duration as nanoseconds.
func EncDuration(d time.Duration) int64 { return int64(d) }

// DecDuration is the inverse of EncDuration.
func DecDuration(v int64) time.Duration { return time.Duration(v) }
