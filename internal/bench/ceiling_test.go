package bench_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/bench"
)

func TestCeilingIsPositive(t *testing.T) {
	rate, err := bench.Ceiling(context.Background(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Fatalf("ceiling %v/s, want a positive rate", rate)
	}
}

func TestCeilingStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := bench.Ceiling(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled ceiling returned %v, want context.Canceled", err)
	}
	if _, err := bench.Ceiling(context.Background(), 0); err == nil {
		t.Fatal("a ceiling of no duration: no error")
	}
}
