package worker

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// observeUDX exports what the worker's UDX instance did: packets by
// event and system calls by direction, so that the cost of relaying a GB
// can be read as packets and calls per GB, and the read slots its sockets
// hold against their shared bound. One callback reads the counts once a
// collection for all four.
func (w *Worker) observeUDX(m metric.Meter) error {
	set := func(k, v string) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String(k, v)))
	}
	sent, resent, received := set("event", "data_sent"), set("event", "retransmitted"), set("event", "data_received")
	acksIn, acksOut := set("event", "ack_received"), set("event", "ack_sent")
	send, recv := set("op", "send"), set("op", "receive")
	packets, err := m.Int64ObservableCounter("dhtrelay.udx.packets", metric.WithDescription("UDX packets of the worker's node: data sent (retransmissions included), retransmitted, data received, and packets without data (acks) received and sent."))
	if err != nil {
		return err
	}
	syscalls, err := m.Int64ObservableCounter("dhtrelay.udx.syscalls", metric.WithDescription("UDP system calls of the worker's node: sends (one may carry many packets with GSO) and receives (one may bring many with GRO)."))
	if err != nil {
		return err
	}
	slots, err := m.Int64ObservableGauge("dhtrelay.udx.read_slots", metric.WithDescription("Read slots (64 KiB each) the worker's UDP sockets hold beyond each one's first, for reading many datagrams a call; at most 128 for all."))
	if err != nil {
		return err
	}
	refused, err := m.Int64ObservableCounter("dhtrelay.udx.read_slots_refused", metric.WithDescription("Times a busy UDP socket wanted more read slots than the bound of 128 left: it read fewer datagrams a call, at more CPU per packet."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c := w.cfg.Node.DHT().UDX().Counts()
		o.ObserveInt64(packets, int64(c.DataSent), sent)
		o.ObserveInt64(packets, int64(c.Retransmits), resent)
		o.ObserveInt64(packets, int64(c.DataReceived), received)
		o.ObserveInt64(packets, int64(c.AcksReceived), acksIn)
		o.ObserveInt64(packets, int64(c.AcksSent), acksOut)
		o.ObserveInt64(syscalls, int64(c.SendCalls), send)
		o.ObserveInt64(syscalls, int64(c.RecvCalls), recv)
		o.ObserveInt64(slots, int64(c.SlotsHeld))
		o.ObserveInt64(refused, int64(c.SlotsRefused))
		return nil
	}, packets, syscalls, slots, refused)
	return err
}
