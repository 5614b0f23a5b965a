package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// A DHT node that holds requests and has sent or been answered nothing for
// stallAfter is stalled: a request is tried four times a second apart and
// the congestion window frees a slot every 750 ms, so a healthy node does
// one or the other many times within it. livenessEvery is how often the
// worker looks.
const (
	stallAfter    = 20 * time.Second
	livenessEvery = 2 * time.Second
)

// ErrDHTStalled means the worker's DHT node stopped making progress.
var ErrDHTStalled = errors.New("worker: DHT node makes no progress")

// watchDHT looks at the node's request engine every livenessEvery until
// ctx ends, and logs each change between progressing and stalled.
func (w *Worker) watchDHT(ctx context.Context) {
	t := time.NewTicker(livenessEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h := w.cfg.Node.DHT().Health()
		why := h.Stalled(time.Now(), stallAfter)
		w.mu.Lock()
		was := w.stalled
		w.stalled = why
		w.mu.Unlock()
		switch {
		case why != "" && was == "":
			w.log.Warn("DHT node stalled; reporting not ready", "why", why, "held", h.Held, "waiting", h.Waiting)
		case why == "" && was != "":
			w.log.Info("DHT node progressing again; ready", "held", h.Held, "waiting", h.Waiting)
		}
	}
}

// Ready reports why the worker cannot serve, or nil: NATS is down, or its
// DHT node stalled.
func (w *Worker) Ready() error {
	if !w.NATSUp() {
		return errors.New("NATS not connected")
	}
	w.mu.Lock()
	why := w.stalled
	w.mu.Unlock()
	if why != "" {
		return fmt.Errorf("%w: %s", ErrDHTStalled, why)
	}
	return nil
}

// observe registers the worker's instruments of its DHT node: requests
// held by state, requests refused, and whether it is stalled.
func (w *Worker) observe(m metric.Meter) error {
	held := metric.WithAttributeSet(attribute.NewSet(attribute.String("state", "held")))
	waiting := metric.WithAttributeSet(attribute.NewSet(attribute.String("state", "waiting")))
	_, err := m.Int64ObservableGauge("dhtrelay.dht.requests", metric.WithDescription("Requests the worker's DHT node holds: all held (sent or waiting), and those waiting for its congestion window."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			h := w.cfg.Node.DHT().Health()
			o.Observe(int64(h.Held), held)
			o.Observe(int64(h.Waiting), waiting)
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = m.Int64ObservableCounter("dhtrelay.dht.refused", metric.WithDescription("DHT requests refused at once: the node, or the session asking, already held as many as it may."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(w.cfg.Node.DHT().Stats().Busy))
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = m.Int64ObservableGauge("dhtrelay.dht.stalled", metric.WithDescription("1 while the worker's DHT node holds requests and neither sends nor is answered."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			w.mu.Lock()
			stalled := w.stalled != ""
			w.mu.Unlock()
			v := int64(0)
			if stalled {
				v = 1
			}
			o.Observe(v)
			return nil
		}))
	return err
}
