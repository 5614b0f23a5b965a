package dhtrpc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/dhtrelay/dht-relay/compact"
)

// Reply is one node's response to a query.
type Reply struct {
	From     netip.AddrPort
	ID       *[IDSize]byte // nil when the node is not persistent
	Response *Response
}

type candidate struct {
	id   [IDSize]byte
	addr netip.AddrPort
	via  netip.AddrPort // the node whose reply named it, if any
}

// Query walks towards target: it asks the closest nodes it knows, learns
// closer ones from their replies, and stops when the K closest nodes that
// replied are closer than anything left to ask. onReply sees every reply as
// it arrives. It returns the closest replies, nearest first.
func (d *DHT) Query(ctx context.Context, target [IDSize]byte, internal bool, command uint64, value []byte, onReply func(Reply)) ([]Reply, error) {
	d.mu.Lock()
	var cands []candidate
	for _, c := range d.table.closest(&target, K) {
		cands = append(cands, candidate{id: c.ID, addr: c.Addr})
	}
	d.mu.Unlock()
	if len(cands) < K {
		for _, b := range d.cfg.Bootstrap {
			cands = append(cands, candidate{id: NodeID(b), addr: b})
		}
	}
	seen := map[netip.AddrPort]bool{d.server.LocalAddr(): true, d.client.LocalAddr(): true}
	if pub := d.PublicAddr(); pub.Port() != 0 {
		seen[netip.AddrPortFrom(pub.Addr(), d.server.LocalAddr().Port())] = true
	}
	for _, c := range cands {
		seen[c.addr] = true
	}
	byDistance := func(a, b candidate) int {
		if closer(&target, &a.id, &b.id) {
			return -1
		}
		if closer(&target, &b.id, &a.id) {
			return 1
		}
		return 0
	}
	slices.SortFunc(cands, byDistance)

	var closest []Reply
	type result struct {
		c   candidate
		r   reply
		err error
	}
	hints := 0
	results := make(chan result, queryConcurrent)
	inflight := 0
	for {
		for inflight < queryConcurrent && len(cands) > 0 {
			c := cands[0]
			if len(closest) >= K && !closer(&target, &c.id, closest[len(closest)-1].ID) {
				cands = nil // everything left is farther than the K closest
				break
			}
			cands = cands[1:]
			inflight++
			go func() {
				r, err := d.request(ctx, c.addr, internal, command, &target, value, nil, nil)
				r.from = c.addr
				results <- result{c, r, err}
			}()
		}
		if inflight == 0 {
			break
		}
		var res result
		select {
		case res = <-results:
		case <-ctx.Done():
			return closest, ctx.Err()
		}
		inflight--
		if res.err != nil {
			// Tell the node that named it that it seems down.
			if errors.Is(res.err, ErrTimeout) && res.c.via.IsValid() && hints < maxDownHints {
				hints++
				go d.request(context.WithoutCancel(ctx), res.c.via, true, CmdDownHint, nil, compact.AppendIPv4(nil, res.c.addr), nil, nil)
			}
			continue
		}
		rep := Reply{From: res.r.from, ID: res.r.fromID, Response: res.r.res}
		if onReply != nil {
			onReply(rep)
		}
		if rep.ID != nil {
			closest = append(closest, rep)
			slices.SortFunc(closest, func(a, b Reply) int {
				return byDistance(candidate{id: *a.ID}, candidate{id: *b.ID})
			})
			if len(closest) > K {
				closest = closest[:K]
			}
		}
		added := false
		for _, a := range rep.Response.CloserNodes {
			if seen[a] || !a.Addr().Is4() || a.Port() == 0 {
				continue
			}
			seen[a] = true
			cands = append(cands, candidate{NodeID(a), a, rep.From})
			added = true
		}
		if added {
			slices.SortFunc(cands, byDistance)
		}
	}
	return closest, nil
}

// FindNode queries for the nodes closest to target.
func (d *DHT) FindNode(ctx context.Context, target [IDSize]byte) ([]Reply, error) {
	return d.Query(ctx, target, true, CmdFindNode, nil, nil)
}

// Ping sends an internal PING.
func (d *DHT) Ping(ctx context.Context, to netip.AddrPort) (*Response, error) {
	r, err := d.request(ctx, to, true, CmdPing, nil, nil, nil, nil)
	return r.res, err
}

// Bootstrap joins the network: a query for the node's own id through the
// bootstrap nodes fills the table and samples the node's public address.
// Then the node tests whether its server socket is reachable (PING_NAT): a
// Persistent node that passes becomes persistent at once, with the id of
// its public address, and announces itself with a second query; any other
// node that passes stops being firewalled and becomes persistent after
// staying stable for a while (see tick), as dht-rpc's adaptive mode.
func (d *DHT) Bootstrap(ctx context.Context) error {
	if _, err := d.FindNode(ctx, d.ID()); err != nil {
		return err
	}
	d.mu.Lock()
	d.bootstrapped = true
	done := !d.ephemeral
	d.mu.Unlock()
	if done {
		return nil
	}
	if !d.updateNetworkState(ctx, !d.cfg.Persistent) || !d.Persistent() {
		return nil
	}
	_, err := d.FindNode(ctx, d.ID())
	return err
}

// updateNetworkState runs the reachability test. It clears the firewalled
// state when the server socket answers at the sampled public address and,
// unless onlyFirewall, makes the node persistent with that address's id.
func (d *DHT) updateNetworkState(ctx context.Context, onlyFirewall bool) bool {
	d.mu.Lock()
	pub := d.nat.addr()
	if !onlyFirewall {
		d.stableTicks = moreStableTicks
		d.lastHost = pub.Addr()
	}
	firewalled := d.firewalled
	var probe [IDSize]byte
	rand.Read(probe[:])
	nodes := d.table.closest(&probe, 5)
	d.mu.Unlock()
	if !d.ephemeralNow() || !pub.Addr().IsValid() || pub.Port() == 0 || len(nodes) == 0 {
		return false
	}
	port := d.server.LocalAddr().Port()
	if firewalled {
		value := binary.LittleEndian.AppendUint16(nil, port)
		type res struct {
			r   reply
			err error
		}
		ch := make(chan res, len(nodes))
		for _, n := range nodes {
			go func() {
				r, err := d.request(ctx, n.Addr, true, CmdPingNAT, nil, value, nil, d.client)
				ch <- res{r, err}
			}()
		}
		ok := 0
		for range nodes {
			r := <-ch
			// The reply must come to the server socket, which must be
			// reachable at the same host and at its own port number.
			if r.err == nil && r.r.socket == d.server && r.r.res.To.Port() == port && r.r.res.To.Addr() == pub.Addr() {
				ok++
			}
		}
		need := 3
		if len(nodes) < 5 {
			need = 1
		}
		if ok < need {
			return false
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.firewalled = false
	if onlyFirewall || !d.ephemeral || d.nat.addr() != pub {
		return !onlyFirewall && !d.ephemeral
	}
	d.ephemeral = false
	d.table.rehome(NodeID(netip.AddrPortFrom(pub.Addr(), port)))
	return true
}

func (d *DHT) ephemeralNow() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ephemeral
}

// Commit sends command to every reply of a query with the token that node
// gave, as dht-rpc's query commit does (hyperdht announces this way), and
// returns how many nodes accepted it.
func (d *DHT) Commit(ctx context.Context, replies []Reply, internal bool, command uint64, target [IDSize]byte, value []byte) (int, error) {
	type res struct{ err error }
	ch := make(chan res, len(replies))
	for _, r := range replies {
		go func() {
			if r.Response.Token == nil {
				ch <- res{fmt.Errorf("dhtrpc: commit to %s: no token", r.From)}
				return
			}
			got, err := d.request(ctx, r.From, internal, command, &target, value, r.Response.Token, nil)
			if err == nil && got.res.Error != 0 {
				err = RemoteError(got.res.Error)
			}
			ch <- res{err}
		}()
	}
	ok := 0
	var first error
	for range replies {
		r := <-ch
		if r.err == nil {
			ok++
		} else if first == nil {
			first = r.err
		}
	}
	if ok == 0 && first != nil {
		return 0, first
	}
	return ok, nil
}
