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
// because its streams hold nine tenths of --worker-budget.
var ErrWorkerBudget = errors.New("relay: the worker's memory budget is spent")

// heldEvery is how stale the figure a refusal is decided on may be:
// summing what the streams hold walks every one of them.
const heldEvery = 100 * time.Millisecond

// held is what the worker's streams hold in memory: the UDX buffers of
// every stream of its node, client data queued for peers, and what peers'
// messages sent on in parts have still to send (SecretStream reads a
// message whole, up to 16 MiB, before any of it may go).
type held struct {
	udx      func() int64
	queued   atomic.Int64 // encoded client data waiting for the peer
	messages atomic.Int64 // peers' messages not yet sent on

	mu   sync.Mutex
	at   time.Time
	last int64
}

// bytes is the figure at most heldEvery old.
func (h *held) bytes() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := time.Now(); now.Sub(h.at) >= heldEvery {
		h.at, h.last = now, h.udx()+h.queued.Load()+h.messages.Load()
	}
	return h.last
}

// overBudget reports whether the worker should refuse new work, by the
// rule the edge's read budget follows.
func (w *Worker) overBudget() bool { return w.overBudgetWith(0) }

// overBudgetWith is overBudget for work that would hold n more bytes.
func (w *Worker) overBudgetWith(n int) bool {
	return budget.TightAt(w.held.bytes()+int64(n), int64(w.cfg.Limits.WorkerBudget))
}

func (w *Worker) observeHeld(m metric.Meter) error {
	_, err := m.Int64ObservableGauge("dhtrelay.worker.held", metric.WithUnit("By"), metric.WithDescription("Bytes the worker's streams hold, received for clients (peers' messages not yet sent on included) and sent to peers unacked, against --worker-budget."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(w.held.bytes())
			return nil
		}))
	return err
}
