package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/dhtrelay/dht-relay/internal/budget"
)

// ErrWorkerBudget means the worker refused a session or a stream, or
// failed a stream on a peer's message longer than the credit window,
// because its streams would hold nine tenths of --worker-budget.
var ErrWorkerBudget = errors.New("relay: the worker's memory budget is spent")

// heldEvery is how stale the UDX buffers' share of the figure a refusal
// is decided on may be: summing them walks every stream.
const heldEvery = 100 * time.Millisecond

// held is what the worker's streams hold in memory: the UDX buffers of
// every stream of its node, client data queued for peers, and peers'
// messages from when their length is read until they are sent on
// (SecretStream reads a message whole, up to 16 MiB, before any of it
// may go). The last two are counted as they change, so that streams
// taking long messages at once each see the others'.
type held struct {
	udx      func() int64
	queued   atomic.Int64 // encoded client data waiting for the peer
	messages atomic.Int64 // peers' messages being read or not yet sent on

	mu      sync.Mutex
	at      time.Time
	lastUDX int64
}

// bytes is the figure, its UDX share at most heldEvery old.
func (h *held) bytes() int64 {
	return h.udxShare() + h.queued.Load() + h.messages.Load()
}

// udxShare reads the UDX buffers at most every heldEvery. The read walks
// another package's streams: should it panic, the lock is let go, or every
// later refusal check of every session would wait for ever.
func (h *held) udxShare() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.Sub(h.at) >= heldEvery {
		h.at, h.lastUDX = now, h.udx()
	}
	return h.lastUDX
}

// overBudget reports whether the worker should refuse new work, by the
// rule the edge's read budget follows.
func (w *Worker) overBudget() bool {
	return budget.TightAt(w.held.bytes(), int64(w.cfg.Limits.WorkerBudget))
}

// takeMessage counts a peer's message of n bytes in what the worker holds
// unless that would spend the budget; counted first and checked after, so
// that of messages taken at once none passes unseen by the others.
func (w *Worker) takeMessage(n int) bool {
	w.held.messages.Add(int64(n))
	if w.overBudget() {
		w.held.messages.Add(-int64(n))
		return false
	}
	return true
}

func (w *Worker) observeHeld(m metric.Meter) error {
	_, err := m.Int64ObservableGauge("dhtrelay.worker.held", metric.WithUnit("By"), metric.WithDescription("Bytes the worker's streams hold, received for clients (peers' messages not yet sent on included) and sent to peers unacked, against --worker-budget."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(w.held.bytes())
			return nil
		}))
	return err
}
