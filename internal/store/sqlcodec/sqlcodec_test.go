package sqlcodec

import (
	"slices"
	"testing"
	"time"
)

func TestTime(t *testing.T) {
	if EncTime(time.Time{}) != 0 || !DecTime(0).IsZero() {
		t.Fatal("the zero time is not stored as 0")
	}
	in := time.Date(2030, 3, 4, 5, 6, 7, 123456789, time.FixedZone("X", 3600))
	out := DecTime(EncTime(in))
	if !out.Equal(in.Truncate(time.Microsecond)) || out.Location() != time.UTC {
		t.Fatalf("DecTime(EncTime(%v)) = %v, want it to the microsecond in UTC", in, out)
	}
}

func TestList(t *testing.T) {
	for _, l := range [][]string{nil, {}, {"a"}, {"a", "b,c", `"q"`}} {
		enc := EncList(l)
		if len(l) == 0 && enc != "[]" {
			t.Errorf("EncList(%q) = %q, want []", l, enc)
		}
		dec, err := DecList(enc)
		if err != nil || !slices.Equal(dec, l) || (len(l) == 0 && dec != nil) {
			t.Errorf("DecList(EncList(%q)) = %q, %v", l, dec, err)
		}
	}
	if _, err := DecList("not json"); err == nil {
		t.Error("DecList of invalid JSON succeeded")
	}
}

func TestScalars(t *testing.T) {
	if EncBytes(nil) != nil {
		t.Error("EncBytes(nil) is not NULL")
	}
	if b, ok := EncBytes([]byte{}).([]byte); !ok || b == nil {
		t.Error("EncBytes of an empty slice is not an empty slice")
	}
	if EncBool(true) != 1 || EncBool(false) != 0 || !DecBool(1) || DecBool(0) {
		t.Error("booleans are not 0/1")
	}
	if d := 5*time.Minute + time.Nanosecond; DecDuration(EncDuration(d)) != d {
		t.Error("durations do not round-trip")
	}
}
