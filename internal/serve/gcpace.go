package serve

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// At GCPercent the collector's goal is a quarter over what is live, and a
// relay with few sessions has little live, a few MB: relaying a few
// hundred MB a second from a JS peer (NATS's read buffers and split
// messages are not pooled) collected 40 to 110 times a second, and the
// collections, their assists and the yields they force took a fifth of
// the relay's CPU per GB. So the headroom over what is live grows while
// collections come less than minGCGap apart, up to maxGCHeadroom, and
// shrinks back to GCPercent's once they come far apart again: a relay
// streaming collects at most some twenty times a second, and one holding
// idle sessions, which makes little garbage, goes back to GCPercent's
// small heap. Where the relay limits the rate (a Go peer), this cut its
// CPU per GB by a tenth to a fifth; the price is up to maxGCHeadroom of
// heap while garbage comes fast, some 7 MB after opening 1,000 sessions.
const (
	minGCGap      = 50 * time.Millisecond
	maxGCHeadroom = 32 << 20
)

// gcPacer sets the collector's percentage after each collection from
// what is live and how soon the collection came after the one before.
type gcPacer struct {
	base     int
	headroom uint64 // bytes the heap may grow over what is live
	percent  int    // as last set
	cycles   uint64 // collections counted at the last adjustment
	at       time.Time
	sample   []metrics.Sample
}

// paceGC applies base and paces the collector from the next collection on,
// for as long as the process runs: a cleanup the runtime runs after each
// collection sets the percentage for the next.
func paceGC(base int) {
	p := &gcPacer{base: base, percent: base, at: time.Now(), sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"},
	}}
	debug.SetGCPercent(base)
	p.arm()
}

// gcMark is what each collection frees so that the cleanup runs; it holds
// a pointer, so the allocator does not pack it with others (a packed tiny
// object might not be freed when it becomes unreachable).
type gcMark struct{ _ *byte }

func (p *gcPacer) arm() {
	runtime.AddCleanup(new(gcMark), func(p *gcPacer) {
		p.adjust(time.Now())
		p.arm()
	}, p)
}

// adjust doubles the headroom when collections came sooner than minGCGap
// apart and halves it when they came more than four times that apart,
// within base's share of what is live and maxGCHeadroom, and sets the
// percentage that gives it.
func (p *gcPacer) adjust(now time.Time) {
	metrics.Read(p.sample)
	live, cycles := max(p.sample[0].Value.Uint64(), 1), p.sample[1].Value.Uint64()
	n := max(cycles-p.cycles, 1) // cleanups may run late, after more than one
	gap := now.Sub(p.at) / time.Duration(n)
	p.cycles, p.at = cycles, now
	switch {
	case gap < minGCGap:
		p.headroom = min(2*p.headroom, maxGCHeadroom)
	case gap > 4*minGCGap:
		p.headroom /= 2
	}
	p.headroom = max(p.headroom, live*uint64(p.base)/100)
	percent := max(int(p.headroom*100/live), p.base)
	if percent != p.percent {
		debug.SetGCPercent(percent)
		p.percent = percent
	}
}
