package serve

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// HeapFloor is the least heap the collector waits for before it runs. At
// GCPercent the goal is a quarter over what is live, and a relay with few
// sessions has little live: a few MB, so relaying a few hundred MB a
// second (whose buffers, NATS's among them, are not all pooled) ran the
// collector 40 to 110 times a second, and the collections, their assists
// and the yields they force took a fifth of the relay's CPU per GB
// relayed from a JS peer. Over 16 MiB of live heap (some 3,000 idle
// sessions) the floor no longer applies and GCPercent alone sets the goal.
const HeapFloor = 32 << 20

// gcFloor raises the collector's percentage after each collection so that
// its next goal is at least floor, and lowers it back to base once what
// is live makes base reach floor alone.
type gcFloor struct {
	base    int
	floor   uint64
	percent int // as last set
	sample  []metrics.Sample
}

// keepGCFloor applies base and keeps floor from the next collection on,
// for as long as the process runs: a cleanup the runtime runs after each
// collection sets the percentage for the next.
func keepGCFloor(base int, floor uint64) {
	f := &gcFloor{base: base, floor: floor, percent: base, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	debug.SetGCPercent(base)
	f.arm()
}

// gcMark is what each collection frees so that the cleanup runs; it holds
// a pointer, so the allocator does not pack it with others (a packed tiny
// object might not be freed when it becomes unreachable).
type gcMark struct{ _ *byte }

func (f *gcFloor) arm() {
	runtime.AddCleanup(new(gcMark), func(f *gcFloor) {
		f.adjust()
		f.arm()
	}, f)
}

// adjust sets the percentage that makes the goal floor over what the last
// collection found live, never below base.
func (f *gcFloor) adjust() {
	metrics.Read(f.sample)
	live := f.sample[0].Value.Uint64()
	p := f.base
	if live > 0 && live*uint64(100+f.base)/100 < f.floor {
		p = int(f.floor*100/live) - 100
	}
	if p != f.percent {
		debug.SetGCPercent(p)
		f.percent = p
	}
}
