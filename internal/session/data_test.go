package session

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/natstest"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/relay"
)

// endpoints are an edge's and a worker's routing endpoints on a real NATS
// server of the test's own; a link of the edge's reaches the worker at
// "test.worker.<id>", and back at "test.edge.<id>".
func endpoints(t *testing.T) (edge, worker *routing.Endpoint) {
	nc, err := nats.Connect(natstest.Run(t, natsserver.Options{}).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	end := func(prefix string) *routing.Endpoint {
		e, err := routing.NewEndpoint(nc, prefix, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	return end("test.edge"), end("test.worker")
}

// toWorker is a session linked over a real NATS server to a test's
// worker end, which collects the frames the session sends.
func toWorker(t *testing.T) (*Session, chan routing.Frame) {
	edge, worker := endpoints(t)
	got := make(chan routing.Frame, 64)
	worker.Attach("s", "test.edge.s", func(f routing.Frame) {
		f.Payload = bytes.Clone(f.Payload) // the frame's buffer is lent
		got <- f
	}, func(err error) { t.Errorf("the worker's link failed: %v", err) })
	s := New(Config{ID: "s", Framed: &closedTransport{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.link = edge.Attach("s", "test.worker.s", func(routing.Frame) {}, func(error) {})
	return s, got
}

// sent is what the worker got of one client message: the frames' kinds,
// and each Data frame's buffers.
func sent(t *testing.T, got chan routing.Frame, n int) (kinds []routing.Kind, bufs [][][]byte) {
	for total := 0; total < n; {
		select {
		case f := <-got:
			kinds = append(kinds, f.Kind)
			if f.Kind != routing.Kind(relay.TypeData) {
				continue
			}
			m, err := f.Message()
			if err != nil {
				t.Fatal(err)
			}
			var b [][]byte
			for p := range m.(*relay.Data).Buffers.All() {
				b = append(b, p)
				total += len(p)
			}
			bufs = append(bufs, b)
		case <-time.After(10 * time.Second):
			t.Fatalf("the worker got %d frames, not all %d bytes", len(kinds), n)
		}
	}
	return kinds, bufs
}

// A client's message as a non-custodial client's SecretStream writes a
// 64 KiB write: the message's short header, then its body.
var header, body = bytes.Repeat([]byte{1}, 3), bytes.Repeat([]byte{2}, 65536+17)

// TestRawStreamDataGoesInFullFrames: a non-custodial stream's bytes are
// cut where a frame is full, whatever the client's buffers, and nothing
// is announced: a message a little over two chunks goes in two frames,
// where keeping its buffers took four (the header alone, an announcement
// of the body, and the body in three parts, the last of 20 bytes).
func TestRawStreamDataGoesInFullFrames(t *testing.T) {
	s, got := toWorker(t)
	put(&s.byClient, 1, &stream{worker: 7, client: 1, raw: true, gate: routing.NewGate()})
	s.clientData(&relay.Data{Alias: 1, Buffers: relay.MakeBuffers(header, body)})
	kinds, bufs := sent(t, got, len(header)+len(body))
	if len(kinds) != 2 {
		t.Errorf("the message went in %d frames (%v), want 2", len(kinds), kinds)
	}
	var joined []byte
	for _, b := range bufs {
		for _, p := range b {
			joined = append(joined, p...)
		}
	}
	if !bytes.Equal(joined, append(header, body...)) {
		t.Fatalf("the worker got %d bytes, not the client's %d in order", len(joined), len(header)+len(body))
	}
}

// TestCustodialStreamKeepsEachBuffer: a custodial stream's buffers are
// each a SecretStream message at the peer: the header goes as a buffer of
// its own, and the body, longer than a frame, is announced before its
// parts.
func TestCustodialStreamKeepsEachBuffer(t *testing.T) {
	s, got := toWorker(t)
	put(&s.byClient, 1, &stream{worker: 7, client: 1, gate: routing.NewGate()})
	s.clientData(&relay.Data{Alias: 1, Buffers: relay.MakeBuffers(header, body)})
	kinds, bufs := sent(t, got, len(header)+len(body))
	if len(bufs[0]) != 1 || !bytes.Equal(bufs[0][0], header) {
		t.Fatalf("the first frame carried %d buffers, want the header alone", len(bufs[0]))
	}
	if kinds[1] != routing.KindMessage {
		t.Fatalf("frames %v: the body was not announced", kinds)
	}
	var parts []byte
	for _, b := range bufs[1:] {
		if len(b) != 1 {
			t.Fatalf("a part of the body came with %d buffers", len(b))
		}
		parts = append(parts, b[0]...)
	}
	if !bytes.Equal(parts, body) {
		t.Fatalf("the body's parts are %d bytes, want %d", len(parts), len(body))
	}
}

// vecTransport is a transport that writes a message from its parts, as
// the WebSocket one does, and hands each message written to the test.
type vecTransport struct {
	closedTransport
	wrote chan []byte
}

func (v *vecTransport) WriteMessage(b []byte) error {
	v.wrote <- bytes.Clone(b)
	return nil
}

func (v *vecTransport) WriteMessageVec(parts [][]byte) error {
	v.wrote <- bytes.Join(parts, nil)
	return nil
}

// fromWorker is a session linked over a real NATS server to a test's
// worker end, whose frames reach the session with the buffers the feed
// lends, and which collects the credit the session grants; the session's
// client is a vecTransport.
func fromWorker(t *testing.T) (s *Session, worker *routing.Link, credit chan uint64, client *vecTransport) {
	edgeEnd, workerEnd := endpoints(t)
	client = &vecTransport{wrote: make(chan []byte, 64)}
	l := limits.Default()
	s = New(Config{ID: "s", Framed: client, Limits: &l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.mux = protomux.New(client)
	var err error
	if s.ch, err = relay.OpenChannel(s.mux, relay.ChannelConfig{OnMessage: func(relay.Message) {}, OnError: func(error) {}}); err != nil {
		t.Fatal(err)
	}
	<-client.wrote // the channel's open
	credit = make(chan uint64, 64)
	worker = workerEnd.Attach("s", "test.edge.s", func(f routing.Frame) {
		if f.Kind == routing.KindCredit {
			c, _ := routing.DecodeCredit(f.Payload)
			credit <- c.Bytes
		}
	}, func(err error) { t.Errorf("the worker's link failed: %v", err) })
	s.link = edgeEnd.Attach("s", "test.worker.s", s.onWorker, func(error) {})
	return s, worker, credit, client
}

// TestPeersMessageHeldInItsParts: a peer's message that comes in parts,
// no longer than heldMax, stays in the frames it came in until whole, and
// reaches the client as one buffer; its credit is granted once it is
// written, as any stream data's. A message copied together as its parts
// came would have its credit granted before it was whole.
func TestPeersMessageHeldInItsParts(t *testing.T) {
	s, worker, credit, client := fromWorker(t)
	put(&s.byWorker, 5, &stream{worker: 5, client: 9, gate: routing.NewGate()})
	msg := make([]byte, 300<<10) // over the grant threshold, under heldMax
	for i := range msg {
		msg[i] = byte(i % 253)
	}
	if err := worker.Send(routing.KindMessage, routing.AppendMessage(nil, routing.Message{Alias: 5, Bytes: uint64(len(msg))})); err != nil {
		t.Fatal(err)
	}
	send := func(p []byte) {
		b := append(make([]byte, routing.DataRoom, routing.DataRoom+len(p)), p...)
		if err := worker.SendData(5, b); err != nil {
			t.Fatal(err)
		}
	}
	last := len(msg) - routing.MaxChunk
	for off := 0; off < last; off += routing.MaxChunk {
		send(msg[off:min(off+routing.MaxChunk, last)])
	}
	select {
	case c := <-credit:
		t.Fatalf("%d bytes of credit granted before the message was whole", c)
	case w := <-client.wrote:
		t.Fatalf("the client was sent %d bytes before the message was whole", len(w))
	case <-time.After(200 * time.Millisecond):
	}
	send(msg[last:])
	var wrote []byte
	select {
	case wrote = <-client.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the whole message was not written to the client")
	}
	// The protomux frame: channel, type, then the Data message.
	r := compact.NewReader(wrote)
	r.Uint()
	if typ := r.Uint(); typ != uint64(relay.TypeData) {
		t.Fatalf("the client was sent a message of type %d", typ)
	}
	m, err := relay.Decode(relay.TypeData, r.Rest())
	if err != nil {
		t.Fatal(err)
	}
	d := m.(*relay.Data)
	if d.Alias != 9 && d.Alias != 5 || d.Buffers.Count() != 1 {
		t.Fatalf("the message reached the client on alias %d as %d buffers, want one", d.Alias, d.Buffers.Count())
	}
	if p, _ := d.Buffers.Next(); !bytes.Equal(p, msg) {
		t.Fatalf("the client got %d bytes, not the peer's %d", len(p), len(msg))
	}
	select {
	case c := <-credit:
		if c != uint64(len(msg)) {
			t.Fatalf("%d bytes of credit granted for a message of %d", c, len(msg))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no credit granted once the message was written")
	}
}

// TestDataWaitsForAFrameOfCredit: with less credit left than a frame
// carries, a client's data waits for more instead of going in a frame of
// what is left; every frame but the message's last is full.
func TestDataWaitsForAFrameOfCredit(t *testing.T) {
	s, got := toWorker(t)
	st := &stream{worker: 7, client: 1, raw: true, gate: routing.NewGate()}
	st.gate.TryTake(1, routing.Window-40<<10) // 40 KiB of credit left
	put(&s.byClient, 1, st)
	const size = 200 << 10
	go s.clientData(&relay.Data{Alias: 1, Buffers: relay.MakeBuffers(make([]byte, size))})
	frames := func(bufs [][][]byte) (sizes []int) {
		for _, b := range bufs {
			n := 0
			for _, p := range b {
				n += len(p)
			}
			sizes = append(sizes, n)
		}
		return sizes
	}
	_, first := sent(t, got, routing.MaxChunk)
	select {
	case f := <-got:
		t.Fatalf("a frame of %d bytes went on the 8 KiB of credit left", len(f.Payload))
	case <-time.After(100 * time.Millisecond):
	}
	st.gate.Grant(routing.Window / 4)
	_, rest := sent(t, got, size-routing.MaxChunk)
	sizes := frames(append(first, rest...))
	for i, n := range sizes[:len(sizes)-1] {
		if n < routing.MaxChunk {
			t.Fatalf("frame %d of %v carried %d bytes, short of a chunk", i, sizes, n)
		}
	}
}
