package worker

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/natstest"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

// fakeEdge is the edge's end of sessions at a worker under test: it opens
// them as an edge does and sees the frames the worker sends.
type fakeEdge struct {
	nc     *nats.Conn
	ep     *routing.Endpoint
	worker string
}

// startWorker runs a worker on an embedded NATS server, with a DHT node
// of its own on loopback (no network to join: the tests here need none),
// and returns it with an edge to drive it.
func startWorker(t *testing.T) (*Worker, *fakeEdge) {
	t.Helper()
	ns := natstest.Run(t, natsserver.Options{})
	connect := func() *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	node, err := hyperdht.New(hyperdht.Config{DHT: dhtrpc.Config{Bootstrap: []netip.AddrPort{}, Host: netip.MustParseAddr("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	w, err := New(Config{ID: "w1", NATS: connect(), Node: node, Limits: limits.Default(), Logger: slog.New(slog.DiscardHandler), Telemetry: telemetry.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.Shutdown(ctx)
	})
	e := &fakeEdge{nc: connect(), worker: "w1"}
	if e.ep, err = routing.NewEndpoint(e.nc, routing.EdgeSessions("e1"), func(error) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ep.Close() })
	return w, e
}

// open opens session id at the worker, custodially, and returns its link
// and the frames the worker sends on it.
func (e *fakeEdge) open(t *testing.T, id string) (*routing.Link, chan routing.Frame, chan error) {
	t.Helper()
	frames, failed := make(chan routing.Frame, 64), make(chan error, 1)
	link := e.ep.Attach(id, routing.WorkerSessions(e.worker)+"."+id, func(f routing.Frame) { frames <- f }, func(err error) { failed <- err })
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	req := routing.OpenRequest{Session: id, Edge: "e1", Handshake: relay.Handshake{Custodial: true, PublicKey: kp.Public, SecretKey: kp.Secret}}
	reply, err := e.nc.Request(routing.OpenSubject(e.worker), req.Encode(), 10*time.Second)
	if err != nil || len(reply.Data) > 0 {
		t.Fatalf("open: %v %s", err, reply.Data)
	}
	return link, frames, failed
}

// TestWorkerEndsASessionThatLostFrames: a frame from the edge that skips
// a number ends the session at the worker, and the worker says why to the
// edge, which would otherwise keep the client waiting on a session gone.
func TestWorkerEndsASessionThatLostFrames(t *testing.T) {
	w, e := startWorker(t)
	_, frames, _ := e.open(t, "s1")
	if w.Sessions() != 1 {
		t.Fatalf("%d sessions", w.Sessions())
	}
	// Frame 1 never arrives; frame 2 does.
	e.nc.Publish(routing.WorkerSessions("w1")+".s1", routing.AppendFrame(nil, routing.KindCredit, 2, routing.AppendCredit(nil, routing.Credit{Alias: 1, Bytes: 1})))
	select {
	case f := <-frames:
		if f.Kind != routing.KindBye || !strings.Contains(string(f.Payload), "frames lost") {
			t.Fatalf("the worker sent kind %d %q", f.Kind, f.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not tell the edge")
	}
	await.True(t, "the session to end at the worker", func() bool { return w.Sessions() == 0 })
}

// TestWorkerAnswersASync: a sync that asks for one back, as an edge sends
// after its NATS connection came back, is answered with the last number
// the worker sent; the session goes on.
func TestWorkerAnswersASync(t *testing.T) {
	w, e := startWorker(t)
	_, frames, failed := e.open(t, "s1")
	// Beside the feed, a plain subscription sees what the link handles
	// itself.
	seen, err := e.nc.SubscribeSync(routing.EdgeSessions("e1") + ".s1")
	if err != nil {
		t.Fatal(err)
	}
	e.nc.Flush()
	e.ep.Interrupted(nil)
	m, err := seen.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no answer to the sync: %v", err)
	}
	f, err := routing.DecodeFrame(m.Data)
	if err != nil || f.Kind != routing.KindSync || f.Seq != 0 || len(f.Payload) != 0 {
		t.Fatalf("the worker answered %+v %v", f, err)
	}
	select {
	case err := <-failed:
		t.Fatalf("the edge's link failed: %v", err)
	case f := <-frames:
		t.Fatalf("a sync reached the session's handler: kind %d", f.Kind)
	case <-time.After(100 * time.Millisecond):
	}
	if w.Sessions() != 1 {
		t.Fatalf("%d sessions after a sync", w.Sessions())
	}
}
