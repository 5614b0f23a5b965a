// Package heapfloor gives the collector a floor of headroom: the heap may
// grow by at least Floor bytes past what the last collection left live
// before the next collection starts, whatever the GC percent says.
//
// A relay runs its collector at a low percent (25) so that a heap of many
// long-lived sessions stays close to what they hold. Where the heap is
// small, though, a quarter of it is a few megabytes, and a relay streaming
// for a few clients allocates that (the embedded NATS server's read
// buffers and the pooled buffers the pools drop at every collection) many
// times a second: one stream echoed through a relay holding 20 MB ran 17
// collections a second. Go's runtime has a floor of its own (4 MB at
// percent 100), scaled down with the percent. With Floor, a small heap
// collects as if the percent were higher, and a heap past Floor/percent*100
// (64 MiB at 25) collects at the percent alone, so the memory a large relay
// keeps per session is unchanged.
package heapfloor

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Floor is the least headroom the heap is given over what is live: 16
// MiB, less than a relay's heap at start and a fraction of what a relay
// holding thousands of sessions lets a quarter of its heap be.
const Floor = 16 << 20

// slack is the share by which the wanted percent must differ from the one
// set before it is set again.
const slack = 8

// liveMetric is the heap the last collection left live.
const liveMetric = "/gc/heap/live:bytes"

// Follow keeps the GC percent at the higher of percent and what gives the
// live heap Floor bytes of headroom, set after every collection until ctx
// is done. It sets the percent at once.
func Follow(ctx context.Context, percent int) {
	s := []metrics.Sample{{Name: liveMetric}}
	follow(ctx, percent, func() uint64 {
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[0].Value.Uint64()
	}, func(p int) { debug.SetGCPercent(p) })
}

// follow sets the percent for the live heap live reports, now and after
// each collection. A percent is a share of the heap the next collection
// finds, so it is set as soon as a collection has measured what is live:
// one set for a heap since grown would give it more than Floor.
func follow(ctx context.Context, percent int, live func() uint64, set func(int)) {
	cur := percent
	var mu sync.Mutex // a collection's callback may overlap the last one's
	apply := func() {
		mu.Lock()
		defer mu.Unlock()
		if p := Percent(live(), percent); differs(p, cur, percent) {
			set(p)
			cur = p
		}
	}
	apply()
	afterEachCollection(ctx, apply)
}

// afterEachCollection calls f after each collection until ctx is done:
// a sentinel that nothing references is collected by the next cycle, and
// its cleanup runs f and leaves a new one.
func afterEachCollection(ctx context.Context, f func()) {
	s := new(sentinel)
	runtime.AddCleanup(s, func(struct{}) {
		if ctx.Err() != nil {
			return
		}
		f()
		afterEachCollection(ctx, f)
	}, struct{}{})
}

// sentinel is large enough to have an allocation of its own: the tiny
// allocator packs smaller pointer-free objects together, and one is freed
// only with all its neighbours.
type sentinel [32]byte

// Percent is the GC percent for a live heap of live bytes: percent, or
// more where percent of live is less than Floor. An unknown heap (0) gets
// percent.
func Percent(live uint64, percent int) int {
	if live == 0 || live*uint64(percent) >= Floor*100 {
		return percent
	}
	return int((Floor*100 + live - 1) / live)
}

// differs reports whether p is worth setting in place of cur: a return
// to percent itself, or a change of more than 1/slack.
func differs(p, cur, percent int) bool {
	switch {
	case p == cur:
		return false
	case p == percent:
		return true
	}
	return slack*(p-cur) > cur || slack*(cur-p) > cur
}
