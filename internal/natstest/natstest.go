// Package natstest gives tests real NATS servers, running in the test's
// process on loopback: one, or a cluster of them routed to each other.
package natstest

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/dhtrelay/dht-relay/internal/await"
)

// Run starts a server on loopback with o's settings (port 0: a free
// one), waits until it takes clients, and shuts it down when the test
// ends.
func Run(t testing.TB, o natsserver.Options) *natsserver.Server {
	t.Helper()
	o.Host, o.NoLog, o.NoSigs = "127.0.0.1", true, true
	if o.Port == 0 {
		o.Port = -1
	}
	ns, err := natsserver.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: the server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// Cluster starts n servers routed to each other and waits until each
// sees all the others.
func Cluster(t testing.TB, n int) []*natsserver.Server {
	t.Helper()
	var servers []*natsserver.Server
	var routes []*url.URL
	for i := range n {
		ns := Run(t, natsserver.Options{ServerName: fmt.Sprint("n", i),
			Cluster: natsserver.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: -1}, Routes: slices.Clone(routes)})
		routes = append(routes, &url.URL{Scheme: "nats", Host: ns.ClusterAddr().String()})
		servers = append(servers, ns)
	}
	await.True(t, "the NATS servers to route to each other", func() bool {
		for _, ns := range servers {
			if ns.NumRoutes() < n-1 {
				return false
			}
		}
		return true
	})
	return servers
}

// AwaitInterest waits until every server knows of a subscription to
// subject: a cluster spreads interest over its routes a moment after a
// client subscribes, and what is published on another server before then
// is dropped.
func AwaitInterest(t testing.TB, subject string, servers ...*natsserver.Server) {
	t.Helper()
	await.True(t, "interest in "+subject+" on every server", func() bool {
		for _, ns := range servers {
			if ns.Running() && !ns.GlobalAccount().SubscriptionInterest(subject) {
				return false
			}
		}
		return true
	})
}
