package heapfloor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/await"
)

// TestPercent: a small heap gets Floor bytes of headroom, a large one the
// percent's share of itself.
func TestPercent(t *testing.T) {
	for _, c := range []struct {
		live    uint64
		percent int
		want    int
	}{
		{0, 25, 25},              // unknown
		{64 << 20, 25, 25},       // a quarter of it is the floor
		{1 << 30, 25, 25},        // past it
		{32 << 20, 25, 50},       // half of it is the floor
		{16 << 20, 25, 100},      // all of it
		{4 << 20, 25, 400},       // a small heap
		{3 << 20, 25, 534},       // rounded up: never under the floor
		{32 << 20, 100, 100},     // the percent gives more already
		{(64 << 20) - 1, 25, 26}, // just under: 25% would be a byte short
	} {
		got := Percent(c.live, c.percent)
		if got != c.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", c.live, c.percent, got, c.want)
		}
		if c.live > 0 && c.live*uint64(got)/100 < Floor && got != c.percent {
			t.Errorf("Percent(%d, %d) = %d gives less than the floor", c.live, c.percent, got)
		}
	}
}

// TestFollowSetsWhatTheHeapNeeds: the percent follows the live heap, is
// set only when it moves by more than the slack, and goes back to the
// percent itself once the heap is large.
func TestFollowSetsWhatTheHeapNeeds(t *testing.T) {
	var mu sync.Mutex
	live := uint64(16 << 20)
	var sets []int
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		follow(ctx, 25, time.Millisecond, func() uint64 {
			mu.Lock()
			defer mu.Unlock()
			return live
		}, func(p int) {
			mu.Lock()
			defer mu.Unlock()
			sets = append(sets, p)
		})
	}()
	step := func(heap uint64, want []int) {
		t.Helper()
		mu.Lock()
		live = heap
		mu.Unlock()
		await.True(t, "the percent set", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(sets) == len(want)
		})
		time.Sleep(20 * time.Millisecond) // ticks that must set nothing
		mu.Lock()
		defer mu.Unlock()
		if len(sets) != len(want) {
			t.Fatalf("set %v, want %v", sets, want)
		}
		for i := range want {
			if sets[i] != want[i] {
				t.Fatalf("set %v, want %v", sets, want)
			}
		}
	}
	step(16<<20, []int{100})         // at once
	step(17<<20, []int{100})         // 95: within the slack
	step(32<<20, []int{100, 50})     // halved
	step(1<<30, []int{100, 50, 25})  // large: the percent
	step(63<<20, []int{100, 50, 25}) // 26: within the slack of 25
	cancel()
	<-done
}
