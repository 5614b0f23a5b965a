package telemetry

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics are the service's instruments. Their Prometheus names:
// dhtrelay_sessions{role}, dhtrelay_streams, dhtrelay_relayed_bytes_total
// {direction}, dhtrelay_connect_duration_seconds{result} and
// dhtrelay_errors_total{kind}.
type Metrics struct {
	sessions metric.Int64UpDownCounter
	streams  metric.Int64UpDownCounter
	relayed  metric.Int64Counter
	connect  metric.Float64Histogram
	errors   metric.Int64Counter

	// Attribute sets built once: data is counted per chunk.
	toPeer, toClient metric.AddOption
	edge, worker     metric.AddOption
}

// Roles a session count is kept for.
const (
	RoleEdge   = "edge"
	RoleWorker = "worker"
)

func newMetrics(m metric.Meter) (*Metrics, error) {
	var ms Metrics
	var err error
	check := func(e error) {
		if err == nil && e != nil {
			err = fmt.Errorf("telemetry: instrument: %w", e)
		}
	}
	var e error
	ms.sessions, e = m.Int64UpDownCounter("dhtrelay.sessions", metric.WithDescription("Client sessions open, on edges and on workers."))
	check(e)
	ms.streams, e = m.Int64UpDownCounter("dhtrelay.streams", metric.WithDescription("Relayed streams open on workers."))
	check(e)
	ms.relayed, e = m.Int64Counter("dhtrelay.relayed", metric.WithUnit("By"), metric.WithDescription("Stream bytes relayed by workers, by direction: to_peer (from the client) or to_client."))
	check(e)
	ms.connect, e = m.Float64Histogram("dhtrelay.connect.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a worker takes to connect to a peer for a client, handshake and holepunch included, by result: ok or the error code."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	check(e)
	ms.errors, e = m.Int64Counter("dhtrelay.errors", metric.WithDescription("Failed sessions and operations, by kind."))
	check(e)
	if err != nil {
		return nil, err
	}
	dir := func(d string) metric.AddOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String("direction", d)))
	}
	role := func(r string) metric.AddOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String("role", r)))
	}
	ms.toPeer, ms.toClient = dir("to_peer"), dir("to_client")
	ms.edge, ms.worker = role(RoleEdge), role(RoleWorker)
	return &ms, nil
}

// Session counts a session opening (+1) or closing (-1) in role.
func (m *Metrics) Session(role string, delta int64) {
	opt := m.worker
	if role == RoleEdge {
		opt = m.edge
	}
	m.sessions.Add(context.Background(), delta, opt)
}

// Stream counts a relayed stream opening (+1) or closing (-1).
func (m *Metrics) Stream(delta int64) { m.streams.Add(context.Background(), delta) }

// Relayed counts n stream bytes relayed.
func (m *Metrics) Relayed(toClient bool, n int) {
	opt := m.toPeer
	if toClient {
		opt = m.toClient
	}
	m.relayed.Add(context.Background(), int64(n), opt)
}

// Connect records a connect's duration and result ("ok" or an error
// kind).
func (m *Metrics) Connect(d time.Duration, result string) {
	m.connect.Record(context.Background(), d.Seconds(), metric.WithAttributes(attribute.String("result", result)))
}

// Error counts a failure of kind, one of a small fixed set per caller so
// that the label stays bounded.
func (m *Metrics) Error(kind string) {
	m.errors.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", kind)))
}
