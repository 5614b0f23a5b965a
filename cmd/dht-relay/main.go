// Command dht-relay is the whole relay in one process: an edge taking
// @hyperswarm/dht-relay clients over WebSocket (and TCP), a DHT worker
// running a HyperDHT node, and an embedded NATS server between them, the
// same code paths as a cluster of separate edges and workers. Its flags
// keep those of the JS relay's bin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/internal/edge"
	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/membership"
	"github.com/dhtrelay/dht-relay/internal/serve"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/internal/worker"
)

func main() {
	serve.TuneRuntime()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serve.StopOnSecondSignal(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dht-relay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dht-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := serve.RegisterClient(fs)
	access := serve.AccessFlags(fs)
	dht := serve.RegisterDHT(fs)
	logging := serve.LogFlags(fs)
	ops := serve.OpsFlags(fs)
	lim := limits.Default()
	serve.LimitFlags(fs, &lim)
	if done, err := ops.Parse(fs, args, stdout); done {
		return err
	}
	if err := lim.Validate(); err != nil {
		return err
	}
	allow, err := access.Allow()
	if err != nil {
		return err
	}
	log, err := logging.Logger(stderr)
	if err != nil {
		return err
	}
	cl, err := client.Listeners(log)
	if err != nil {
		return err
	}

	// Edge and worker reach the embedded server in its process, as the
	// NATS client library allows: each connection is a synchronous pipe,
	// one copy and no system call where loopback TCP costs two copies and
	// two calls per message. The feeds that receive stream data follow
	// their connection there. Measured side by side on a relayed stream,
	// the relay spends about 15% less CPU per GB and moves 10-15% more.
	// The server listens on no port, so no other process reaches it.
	ns, err := natsserver.NewServer(&natsserver.Options{DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("embedded NATS did not start")
	}
	connect := func(name string) (*nats.Conn, error) {
		// The URL only names the server; the library connects through ns.
		// No write deadline: it guards a socket against a server that
		// stops reading, which the server in this process does not, and
		// on a pipe each flush's deadline is a new timer, some 4 MB of
		// garbage per GB relayed.
		return nats.Connect("nats://embedded", nats.Name(name), nats.InProcessServer(ns), nats.FlusherTimeout(0))
	}
	wnc, err := connect("worker")
	if err != nil {
		return err
	}
	defer wnc.Close()
	enc, err := connect("edge")
	if err != nil {
		return err
	}
	defer enc.Close()

	node, err := dht.Start(ctx, log)
	if err != nil {
		return err
	}
	defer node.Close()
	tel, err := telemetry.Setup(ctx, "dht-relay", "local")
	if err != nil {
		return err
	}
	defer serve.FlushTelemetry(tel, log)
	w, err := worker.New(worker.Config{ID: "worker", NATS: wnc, Node: node, Limits: lim, Logger: log, Telemetry: tel})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	e, err := edge.New(edge.Config{ID: "edge", NATS: enc, Limits: lim, Logger: log, BehindProxy: access.BehindProxy, ProxyHops: access.ProxyHops, Allow: allow, Origins: access.Origins(), Contact: client.Contact(), Telemetry: tel})
	if err != nil {
		return err
	}
	// Membership as in a cluster, gossiping over loopback only.
	edgeView, err := membership.Start(membership.Config{ID: "edge", Role: membership.Edge, Watch: membership.Worker, Bind: "127.0.0.1:0", OnLost: e.WorkerLost, Logger: log})
	if err != nil {
		return err
	}
	defer edgeView.Close(0)
	workerView, err := membership.Start(membership.Config{ID: "worker", Role: membership.Worker, Watch: membership.Edge, Bind: "127.0.0.1:0", Join: []string{edgeView.Addr()}, OnLost: w.EdgeLost, Logger: log})
	if err != nil {
		return err
	}
	defer workerView.Close(0)
	if err := e.Start(ctx, edgeView); err != nil {
		return err
	}
	// As every cluster node does, once edge and worker have their
	// endpoints: the one code path, though NATS in the process is not
	// lost in practice.
	defer serve.AnnounceCutOff(e, edgeView, log)()
	defer serve.AnnounceCutOff(w, workerView, log)()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = edgeView.WaitLive(wctx)
	cancel()
	if err != nil {
		return fmt.Errorf("worker not live: %w", err)
	}
	l, err := serve.Listen(cl, e)
	if err != nil {
		return err
	}
	ready := "dht-relay ready: " + l.WS
	if l.TCP != "" {
		ready += " " + l.TCP
	}
	endpoints, stopEndpoints, err := ops.Endpoints(w.Ready, tel.Handler())
	if err != nil {
		l.Close()
		return err
	}
	defer stopEndpoints()
	fmt.Fprintln(stdout, ready+endpoints)

	<-ctx.Done()
	ops.DrainSessions(log, e)
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), serve.ShutdownTimeout)
	defer cancel()
	l.Close()
	w.Shutdown(sctx)
	e.Shutdown(sctx)
	return nil
}
