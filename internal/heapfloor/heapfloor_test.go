package heapfloor

import (
	"context"
	"runtime"
	"slices"
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

// TestFollowSetsWhatTheHeapNeeds: the percent is set at once and after
// each collection for the heap that collection left live, only when it
// moves by more than the slack, and goes back to the percent itself once
// the heap is large; nothing is set after ctx is done.
func TestFollowSetsWhatTheHeapNeeds(t *testing.T) {
	var mu sync.Mutex
	live := uint64(16 << 20)
	var sets []int
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow(ctx, 25, func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return live
	}, func(p int) {
		mu.Lock()
		defer mu.Unlock()
		sets = append(sets, p)
	})
	step := func(heap uint64, want ...int) {
		t.Helper()
		mu.Lock()
		live = heap
		mu.Unlock()
		runtime.GC()
		runtime.GC() // the first cycle's cleanup has run by the second's end, or soon after
		await.True(t, "the percent set", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Equal(sets, want)
		})
	}
	step(16<<20, 100)             // at once
	step(17<<20, 100)             // 95: within the slack
	step(32<<20, 100, 50)         // halved
	step(1<<30, 100, 50, 25)      // large: the percent
	step(63<<20, 100, 50, 25)     // 26: within the slack of 25
	step(4<<20, 100, 50, 25, 400) // small again
	cancel()
	mu.Lock()
	live = 16 << 20
	mu.Unlock()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sets, []int{100, 50, 25, 400}) {
		t.Fatalf("set %v after ctx was done", sets)
	}
}
