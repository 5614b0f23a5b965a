// Command dhtworker is a DHT worker of a relay cluster: it runs a HyperDHT
// node and serves the sessions edges place on it over NATS. Every flag can
// also be set as DHTRELAY_<FLAG> in the environment.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

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
		fmt.Fprintln(os.Stderr, "dhtworker:", err)
		os.Exit(1)
	}
}

// gossipLeaveTimeout bounds telling the cluster this node leaves.
const gossipLeaveTimeout = time.Second

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dhtworker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsFlags := serve.RegisterNATS(fs)
	id := fs.String("id", "", "worker id (a-z, 0-9, '-'; default random)")
	dht := serve.RegisterDHT(fs)
	logging := serve.LogFlags(fs)
	ops := serve.OpsFlags(fs)
	gossip := serve.GossipFlags(fs)
	lim := limits.Default()
	serve.LimitFlags(fs, &lim)
	if done, err := ops.Parse(fs, args, stdout); done {
		return err
	}
	if err := lim.Validate(); err != nil {
		return err
	}
	log, err := logging.Logger(stderr)
	if err != nil {
		return err
	}
	wid := serve.NodeID("worker", *id)
	nc, err := natsFlags.Connect(ctx, wid, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	node, err := dht.Start(ctx, log)
	if err != nil {
		return err
	}
	defer node.Close()
	tel, err := telemetry.Setup(ctx, "dhtworker", wid)
	if err != nil {
		return err
	}
	defer serve.FlushTelemetry(tel, log)
	w, err := worker.New(worker.Config{ID: wid, NATS: nc, Node: node, Limits: lim, Logger: log, Telemetry: tel})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	members, err := gossip.Start(wid, membership.Worker, membership.Edge, w.EdgeLost, log)
	if err != nil {
		return err
	}
	defer members.Close(gossipLeaveTimeout)
	defer serve.AnnounceCutOff(w, members, log)()
	ready := fmt.Sprintf("dhtworker %s ready: dht %s gossip %s", wid, node.DHT().ServerSocket().LocalAddr(), members.Addr())
	endpoints, stopEndpoints, err := ops.Endpoints(w.Ready, tel.Handler())
	if err != nil {
		return err
	}
	defer stopEndpoints()
	fmt.Fprintln(stdout, ready+endpoints)
	<-ctx.Done()
	ops.DrainSessions(log, w)
	sctx, cancel := context.WithTimeout(context.Background(), serve.ShutdownTimeout)
	defer cancel()
	return w.Shutdown(sctx)
}
