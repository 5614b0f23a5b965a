// Command edge is an edge of a relay cluster: it takes @hyperswarm/dht-relay
// clients over WebSocket (and TCP) and places their sessions on the DHT
// workers it hears of over NATS. Every flag can also be set as
// DHTRELAY_<FLAG> in the environment.
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

	"github.com/dhtrelay/dht-relay/internal/affinity"
	"github.com/dhtrelay/dht-relay/internal/edge"
	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/membership"
	"github.com/dhtrelay/dht-relay/internal/serve"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
)

func main() {
	serve.TuneRuntime()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serve.StopOnSecondSignal(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

// gossipLeaveTimeout bounds telling the cluster this node leaves.
const gossipLeaveTimeout = time.Second

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsFlags := serve.RegisterNATS(fs)
	redisFlags := serve.RegisterRedis(fs)
	id := fs.String("id", "", "edge id (a-z, 0-9, '-'; default random)")
	client := serve.RegisterClient(fs)
	access := serve.AccessFlags(fs)
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
	eid := serve.NodeID("edge", *id)
	nc, err := natsFlags.Connect(ctx, eid, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	var place *affinity.Placer
	rdb, err := redisFlags.Client()
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
		place = affinity.New(rdb, log)
	}
	tel, err := telemetry.Setup(ctx, "edge", eid)
	if err != nil {
		return err
	}
	defer serve.FlushTelemetry(tel, log)
	e, err := edge.New(edge.Config{ID: eid, NATS: nc, Limits: lim, Logger: log, BehindProxy: access.BehindProxy, ProxyHops: access.ProxyHops, Allow: allow, Origins: access.Origins(), Contact: client.Contact(), Affinity: place, Telemetry: tel})
	if err != nil {
		return err
	}
	members, err := gossip.Start(eid, membership.Edge, membership.Worker, e.WorkerLost, log)
	if err != nil {
		return err
	}
	defer members.Close(gossipLeaveTimeout)
	if err := e.Start(ctx, members); err != nil {
		return err
	}
	defer serve.AnnounceCutOff(e, members, log)() // the edge's endpoint is made by Start
	l, err := serve.Listen(cl, e)
	if err != nil {
		return err
	}
	ready := fmt.Sprintf("edge %s ready: %s", eid, l.WS)
	if l.TCP != "" {
		ready += " " + l.TCP
	}
	ready += " gossip " + members.Addr()
	endpoints, stopEndpoints, err := ops.Endpoints(func() error {
		if !e.NATSUp() {
			return errors.New("NATS not connected")
		}
		if e.Workers() == 0 {
			return errors.New("no live worker")
		}
		return nil
	}, tel.Handler())
	if err != nil {
		l.Close()
		return err
	}
	defer stopEndpoints()
	fmt.Fprintln(stdout, ready+endpoints)
	<-ctx.Done()
	ops.DrainSessions(log, e)
	l.Close()
	sctx, cancel := context.WithTimeout(context.Background(), serve.ShutdownTimeout)
	defer cancel()
	e.Shutdown(sctx)
	return nil
}
