package drain

import (
	"context"
	"testing"
	"time"
)

// TestSpread: items end over the window, never ahead of their share, and
// all by its end.
func TestSpread(t *testing.T) {
	const n, d = 100, 500 * time.Millisecond
	items := make([]int, n)
	var at []time.Duration
	start := time.Now()
	Spread(context.Background(), d, items, func(int) { at = append(at, time.Since(start)) })
	if len(at) != n {
		t.Fatalf("%d of %d ended", len(at), n)
	}
	for i, a := range at {
		if share := time.Duration(int64(d) * int64(i) / n); a < share {
			t.Fatalf("item %d ended at %v, before its share of the window %v", i, a, share)
		}
	}
	if at[n/2] < d/4 {
		t.Fatalf("half the items ended by %v of a %v window", at[n/2], d)
	}
}

func TestSpreadStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	ended := 0
	Spread(ctx, time.Hour, make([]int, 10), func(int) { ended++ })
	if ended != 0 {
		t.Fatalf("%d of 10 ended in the first moments of an hour", ended)
	}
}
