package serve

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/dhtrelay/dht-relay/internal/membership"
)

// Gossip says where a cluster node gossips membership.
type Gossip struct {
	Bind      string
	Advertise string
	Join      string
	Key       string // base64
	Insecure  bool   // gossip in the clear on a non-loopback address
}

// ErrGossipKey means gossip would bind an address others can reach with
// no key: anyone reaching it could join the cluster and declare its
// nodes dead.
var ErrGossipKey = errors.New("--gossip-key is required when gossip binds a non-loopback address (or --gossip-insecure, for a network only the cluster reaches)")

// GossipFlags registers the gossip flags on fs.
func GossipFlags(fs *flag.FlagSet) *Gossip {
	g := &Gossip{}
	fs.StringVar(&g.Bind, "gossip-bind", "0.0.0.0:7946", "memberlist gossip address, HOST:PORT, UDP and TCP (port 0 picks a free one)")
	fs.StringVar(&g.Advertise, "gossip-advertise", "", "gossip address other nodes reach this one at, when it differs from --gossip-bind")
	fs.StringVar(&g.Join, "gossip-join", "", "gossip addresses of other nodes to join, HOST:PORT[,HOST:PORT...]; names resolve to all their addresses")
	fs.StringVar(&g.Key, "gossip-key", "", "base64 of a 16, 24 or 32-byte key that encrypts and authenticates gossip; required unless gossip binds loopback")
	fs.BoolVar(&g.Insecure, "gossip-insecure", false, "gossip without a key on a non-loopback address, on a network only the cluster reaches")
	return g
}

// Start joins the cluster as id in role, watching the members of watch.
func (g *Gossip) Start(id string, role, watch membership.Role, onLost func(string), log *slog.Logger) (*membership.Members, error) {
	var join []string
	for _, a := range strings.Split(g.Join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			join = append(join, a)
		}
	}
	var key []byte
	if g.Key != "" {
		k, err := base64.StdEncoding.DecodeString(g.Key)
		if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
			return nil, errors.New("--gossip-key: want base64 of 16, 24 or 32 bytes")
		}
		key = k
	}
	if key == nil && !loopback(g.Bind) {
		if !g.Insecure {
			return nil, ErrGossipKey
		}
		log.Warn("gossip is not encrypted (--gossip-insecure): keep its port inside the cluster's network")
	}
	return membership.Start(membership.Config{
		ID: id, Role: role, Watch: watch, Bind: g.Bind, Advertise: g.Advertise, Join: join, Key: key, OnLost: onLost, Logger: log,
	})
}

// loopback reports whether bind (HOST:PORT) is a loopback address, which
// only this host reaches.
func loopback(bind string) bool {
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// cutOffPoll is how often AnnounceCutOff looks whether its node is cut
// off from NATS.
const cutOffPoll = 250 * time.Millisecond

// AnnounceCutOff keeps a node's gossip saying whether the node is cut off
// from NATS (edge.Edge.CutOff, worker.Worker.CutOff), until stop is
// called: while it is, the other role's nodes end the sessions they hold
// with it, whose goodbyes cannot reach them. stop waits for the watch to
// end.
func AnnounceCutOff(node interface{ CutOff() bool }, members interface{ SetAway(bool) error }, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(cutOffPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			away := node.CutOff()
			if err := members.SetAway(away); err != nil {
				log.Warn("gossip: could not announce whether cut off from NATS; trying again", "away", away, "err", err)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
