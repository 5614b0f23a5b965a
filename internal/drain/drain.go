// Package drain ends a process's sessions over a window of time instead of
// all at once, so that the clients of a node being stopped reconnect
// spread over that window rather than in the same second.
package drain

import (
	"context"
	"time"
)

// tick is how often Spread ends the next share.
const tick = 100 * time.Millisecond

// Spread ends items over d: by each moment, the share of items ended is
// the share of d elapsed. It returns once all are ended, or early when ctx
// is done, leaving the rest to the caller.
func Spread[T any](ctx context.Context, d time.Duration, items []T, end func(T)) {
	if len(items) == 0 {
		return
	}
	if d <= 0 {
		for _, it := range items {
			end(it)
		}
		return
	}
	start := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	done := 0
	for done < len(items) {
		due := len(items)
		if el := time.Since(start); el < d {
			due = int(int64(len(items)) * int64(el) / int64(d))
		}
		for ; done < due; done++ {
			end(items[done])
		}
		if done == len(items) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
