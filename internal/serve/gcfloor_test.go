package serve

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitPercent waits for the cleanup that runs after a collection to set
// the collector's percentage to what ok accepts, collecting to make it run.
func waitPercent(t *testing.T, ok func(uint64) bool) uint64 {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		runtime.GC()
		if p := readMetric("/gc/gogc:percent"); ok(p) {
			return p
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the percentage stayed at %d", readMetric("/gc/gogc:percent"))
	return 0
}

// TestGCFloorHoldsCollectionsBackOnASmallHeap: with little live, garbage
// up to the floor is made without a collection, where the base percentage
// alone would collect after every MB or so; once more than the floor is
// live, the base percentage is back.
func TestGCFloorHoldsCollectionsBackOnASmallHeap(t *testing.T) {
	const base, floor = 25, 64 << 20
	keepGCFloor(base, floor)
	waitPercent(t, func(p uint64) bool { return p > base })

	cycles := readMetric("/gc/cycles/total:gc-cycles")
	var last []byte
	for range (floor / 2) / (64 << 10) {
		last = make([]byte, 64<<10)
	}
	runtime.KeepAlive(last)
	if n := readMetric("/gc/cycles/total:gc-cycles") - cycles; n > 2 {
		t.Fatalf("%d collections while making %d MiB of garbage under a %d MiB floor", n, floor/2>>20, floor>>20)
	}

	live := make([][]byte, 0, 2*floor/(64<<10))
	for range cap(live) {
		live = append(live, make([]byte, 64<<10))
	}
	waitPercent(t, func(p uint64) bool { return p == base })
	runtime.KeepAlive(live)
}
