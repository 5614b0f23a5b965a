package procs

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/await"
)

type load struct {
	cores float64
	ticks int
}

func (f *follower) run(loads ...load) {
	for _, l := range loads {
		for range l.ticks {
			f.step(l.cores, tick)
		}
	}
}

// TestStep: the count doubles as soon as the load fills the processors
// there are, and halves once the load has fitted in half of them for a
// whole settle.
func TestStep(t *testing.T) {
	for _, c := range []struct {
		name   string
		p, max int
		loads  []load
		want   int
	}{
		{"a busy core gets a second", 1, 2, []load{{0.97, 1}}, 2},
		{"a load under a core stays on one", 1, 2, []load{{0.8, 100}}, 1},
		{"a peer-paced load busy in bursts stays on one", 1, 2, []load{{0.9, 100}}, 1},
		{"growth doubles up to the runtime's count", 1, 6, []load{{6, 3}}, 6},
		{"no more than the runtime's count", 2, 2, []load{{2, 10}}, 2},
		{"a load that fits in half gives half back after settle", 2, 2, []load{{0.9, 20}}, 1},
		{"not before", 2, 2, []load{{0.9, 19}}, 2},
		{"a load past half keeps them all", 2, 2, []load{{1.1, 100}}, 2},
		{"a busy tick starts the wait over", 2, 2, []load{{0.9, 16}, {1.1, 1}, {0.9, 16}}, 2},
		{"halves, rounding up", 6, 6, []load{{2.5, 20}}, 3},
		{"and again after another settle", 6, 6, []load{{1.5, 40}}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := follower{max: c.max, p: c.p, settle: 20 * tick, wait: 20 * tick}
			f.run(c.loads...)
			if f.p != c.want {
				t.Fatalf("p = %d, want %d", f.p, c.want)
			}
		})
	}
}

// TestFlappingBacksOff: a halving undone at once doubles the wait before
// the next; one that holds brings the wait back.
func TestFlappingBacksOff(t *testing.T) {
	f := follower{max: 2, p: 2, settle: 20 * tick, wait: 20 * tick}
	f.run(load{0.98, 20}) // fits in one core, busy all the time...
	f.run(load{0.98, 1})  // ...but not in one processor
	if f.p != 2 || f.wait != 40*tick {
		t.Fatalf("after an undone halving: p %d, wait %v; want 2, %v", f.p, f.wait, 40*tick)
	}
	f.run(load{0.98, 39})
	if f.p != 2 {
		t.Fatalf("halved before the longer wait")
	}
	f.run(load{0.98, 1}, load{0.98, 1})
	if f.p != 2 || f.wait != 80*tick {
		t.Fatalf("after a second undone halving: p %d, wait %v; want 2, %v", f.p, f.wait, 80*tick)
	}
	f.wait = maxSettle // no further than maxSettle
	f.run(load{0.98, int(maxSettle / tick)}, load{0.98, 1})
	if f.p != 2 || f.wait != maxSettle {
		t.Fatalf("at the longest wait: p %d, wait %v; want 2, %v", f.p, f.wait, maxSettle)
	}
	f.run(load{0.7, int(maxSettle / tick)}) // room to spare in one
	if f.p != 1 {
		t.Fatalf("did not halve after the longest wait")
	}
	f.run(load{0.7, int(regret / tick)}) // ...and a halving that holds resets it
	if f.p != 1 || f.wait != f.settle {
		t.Fatalf("after a halving that held: p %d, wait %v; want 1, %v", f.p, f.wait, f.settle)
	}
}

// TestFollowsTheProcess: follow reads the process's own CPU time, so a
// goroutine spinning on a core raises the count and the count comes back
// once it stops.
func TestFollowsTheProcess(t *testing.T) {
	var p atomic.Int64
	p.Store(1)
	f := follower{max: 2, p: 1, settle: 200 * time.Millisecond, wait: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		follow(ctx, &f, 20*time.Millisecond, time.Hour, hooks{
			cpu:     cpuTime,
			ceiling: func() int { return 2 },
			set:     func(n int) { p.Store(int64(n)) },
		})
	}()
	defer func() { cancel(); <-done }()

	var spin atomic.Bool
	spin.Store(true)
	go func() {
		for spin.Load() {
		}
	}()
	await.Within(t, 10*time.Second, "the count to grow under a spinning goroutine", func() bool { return p.Load() == 2 })
	spin.Store(false)
	await.Within(t, 10*time.Second, "the count to come back once idle", func() bool { return p.Load() == 1 })
}

// TestFollowsTheRuntimesCeiling: the count stays within what the runtime
// would choose now (a container's CPU limit lowered or raised in place),
// and is set again each time after asking, which moves it to the
// runtime's choice.
func TestFollowsTheRuntimesCeiling(t *testing.T) {
	var p, ceiling atomic.Int64
	var cores atomic.Value // float64: the load the fake CPU clock shows
	ceiling.Store(4)
	cores.Store(4.0)
	var used time.Duration
	last := time.Now()
	cpu := func() (time.Duration, bool) {
		now := time.Now()
		used += time.Duration(cores.Load().(float64) * float64(now.Sub(last)))
		last = now
		return used, true
	}
	var mu sync.Mutex
	var calls []string // "ask" and "set", in order
	record := func(c string) {
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
	}
	f := follower{max: 4, p: 1, settle: 100 * time.Millisecond, wait: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		follow(ctx, &f, 10*time.Millisecond, 50*time.Millisecond, hooks{
			cpu: cpu,
			ceiling: func() int {
				record("ask")
				p.Store(ceiling.Load()) // as SetDefaultGOMAXPROCS does
				return int(ceiling.Load())
			},
			set: func(n int) {
				record("set")
				p.Store(int64(n))
			},
		})
	}()
	defer func() { cancel(); <-done }()

	await.Within(t, 10*time.Second, "a busy process to get four processors", func() bool { return p.Load() == 4 })
	ceiling.Store(1)
	await.Within(t, 10*time.Second, "the count to fall to a lowered ceiling", func() bool { return p.Load() == 1 })
	ceiling.Store(2)
	await.Within(t, 10*time.Second, "the count to grow to a raised one", func() bool { return p.Load() == 2 })
	ceiling.Store(4)
	cores.Store(0.0)
	await.Within(t, 10*time.Second, "an idle process back on one processor", func() bool { return p.Load() == 1 })
	time.Sleep(150 * time.Millisecond) // three rechecks more
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for i, c := range calls {
		if c == "ask" && (i+1 == len(calls) || calls[i+1] != "set") {
			t.Fatalf("call %d asked the runtime and the count was not set after: %v", i, calls)
		}
	}
}

// TestOperatorsChoiceStands: with GOMAXPROCS in the environment, Follow
// returns at once.
func TestOperatorsChoiceStands(t *testing.T) {
	t.Setenv("GOMAXPROCS", "2")
	done := make(chan struct{})
	go func() { Follow(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return with GOMAXPROCS set")
	}
}
