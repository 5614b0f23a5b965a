// Package procs keeps the Go scheduler's processor count (GOMAXPROCS) at
// what the process's CPU load needs: one while the load fits in one core,
// up to the count the runtime would choose when it does not.
//
// Relayed bytes pass through a chain of goroutines (the UDX socket's
// reader, the stream's pump, the NATS server's read and write loops, the
// feed, the client's writer), each doing a few microseconds of work per
// message. With several processors each hand-off wakes an idle thread to
// run the next goroutine elsewhere, and idle threads spin looking for
// work; with one, the next goroutine runs on the same thread when the
// current one blocks. On two cores, downloads from a JS peer through a
// relay at one processor cost 20-30% less CPU per GB than at two, and
// moved 10-20% more (the unchanged JS client, either mode). A relay whose
// load needs more than a core gets more processors within a tick.
//
// Setting the count turns off the runtime's own tracking of the CPUs the
// process may use (a container's CPU limit changed in place, say), so the
// ceiling is asked of the runtime again every recheck.
package procs

import (
	"context"
	"os"
	"runtime"
	"time"
)

const (
	// tick is how often the load is measured: how long a relay that
	// outgrew its processors waits for more.
	tick = 250 * time.Millisecond
	// growAt is the share of its processors' time a process must use for
	// more to help: past it, their count doubles. A transfer paced by its
	// peer keeps one processor busy in bursts: an upload to a JS peer
	// used 0.79-0.90 of a core a tick, and at 0.85 its count went to two
	// and stayed, which cost 13% more CPU per GB at the same rate. A
	// relay that needs more than a core shows 0.97 and up.
	growAt = 0.95
	// settle is how long a load must fit in half the processors, busy all
	// the time, before the other half is given back. It fits with room to
	// spare there when the hand-offs were what kept more processors busy;
	// when it does not, the count doubles again at once, and settle
	// doubles (up to maxSettle) so that such a load does not flap.
	settle    = 5 * time.Second
	maxSettle = 2 * time.Minute
	// regret is how soon after halving a doubling says the halving was
	// wrong.
	regret = 4 * tick
	// recheck is how often the runtime is asked again how many processors
	// it would choose, which costs it two stops of the world.
	recheck = 10 * time.Second
)

// Follow sets GOMAXPROCS to one, then from the process's CPU load every
// tick until ctx is done, never above what the runtime would choose. It
// returns at once, changing nothing, when the environment sets GOMAXPROCS
// (the operator's choice), when the runtime chose one processor, or where
// the process's CPU time cannot be read.
func Follow(ctx context.Context) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return
	}
	f := follower{max: runtime.GOMAXPROCS(0), p: 1, settle: settle, wait: settle}
	if f.max < 2 {
		return
	}
	follow(ctx, &f, tick, recheck, hooks{
		cpu: cpuTime,
		ceiling: func() int {
			runtime.SetDefaultGOMAXPROCS()
			return runtime.GOMAXPROCS(0)
		},
		set: func(p int) { runtime.GOMAXPROCS(p) },
	})
}

// hooks are what follow reads and sets: the process's CPU time, the count
// the runtime would choose now, and the count.
type hooks struct {
	cpu     func() (time.Duration, bool)
	ceiling func() int
	set     func(int)
}

// follow applies f's count, then runs f's steps every period and takes
// the runtime's ceiling again every recheck.
func follow(ctx context.Context, f *follower, period, recheck time.Duration, h hooks) {
	used0, ok := h.cpu()
	if !ok {
		return
	}
	h.set(f.p)
	t := time.NewTicker(period)
	defer t.Stop()
	last, checked := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			used, ok := h.cpu()
			if !ok {
				return
			}
			elapsed := now.Sub(last)
			if elapsed <= 0 {
				continue
			}
			before := f.p
			if now.Sub(checked) >= recheck {
				// Asking moved the count to the runtime's choice.
				f.limit(h.ceiling())
				checked, before = now, 0
			}
			f.step(float64(used-used0)/float64(elapsed), elapsed)
			if f.p != before {
				h.set(f.p)
			}
			used0, last = used, now
		}
	}
}

// follower decides the processor count from the load it is shown.
type follower struct {
	max    int           // the runtime's choice
	p      int           // the count now
	settle time.Duration // how long a load must fit in half of p, at first
	wait   time.Duration // and now
	low    time.Duration // how long it has
	halved bool          // p was halved less than regret ago
	since  time.Duration // since p was halved
}

// step takes the cores used over the last elapsed and moves p.
func (f *follower) step(cores float64, elapsed time.Duration) {
	f.since += elapsed
	if f.halved && f.since >= regret {
		f.halved, f.wait = false, f.settle
	}
	switch half := (f.p + 1) / 2; {
	case cores >= growAt*float64(f.p) && f.p < f.max:
		if f.halved {
			f.wait = min(2*f.wait, maxSettle)
			f.halved = false
		}
		f.p = min(f.max, 2*f.p)
		f.low = 0
	case f.p > 1 && cores <= float64(half):
		f.low += elapsed
		if f.low >= f.wait {
			f.p, f.low = half, 0
			f.halved, f.since = true, 0
		}
	default:
		f.low = 0
	}
}

// limit takes the runtime's choice now as the most processors there are.
func (f *follower) limit(n int) {
	f.max = n
	if f.p > f.max {
		f.p, f.low = f.max, 0
	}
}
