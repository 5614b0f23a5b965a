package hyperdht

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/udx"
)

// Config configures a Node.
type Config struct {
	DHT dhtrpc.Config
}

// Node is a HyperDHT node. As a persistent node it stores announcements and
// values for others; as a client it looks up, announces, unannounces, finds
// peers and puts and gets values.
type Node struct {
	// dht is stored once dhtrpc.New returns and read by request handlers,
	// which run on the sockets' goroutines.
	dht atomic.Pointer[dhtrpc.DHT]

	mu         sync.Mutex
	records    recordStore
	router     map[[32]byte]routerEntry // announcements of a key's own server
	bumps      *ttlCache[[32]byte, uint64]
	mutables   *ttlCache[[32]byte, []byte]
	immutables *ttlCache[[32]byte, []byte]
	refreshes  *ttlCache[[32]byte, refreshState]
	servers    map[[32]byte]*Server // this node's own servers, by target
	stats      Stats
	// sockets are the holepunch sockets open, closed with the node.
	sockets map[*udx.Socket]struct{}
	// randomPunches is how many punches against a random NAT run, and
	// lastRandomPunch when the last ended (see randomPunchThrottled).
	randomPunches   int
	lastRandomPunch time.Time
}

// routerEntry is a server's own announcement: where to forward handshakes
// for it, and its record.
type routerEntry struct {
	relay   netip.AddrPort
	record  []byte
	expires time.Time
}

// New starts a node; call Bootstrap to join the network.
func New(cfg Config) (*Node, error) {
	n := &Node{
		router:     map[[32]byte]routerEntry{},
		servers:    map[[32]byte]*Server{},
		sockets:    map[*udx.Socket]struct{}{},
		refreshes:  newTTLCache[[32]byte, refreshState](maxRecords, recordTTL),
		bumps:      newTTLCache[[32]byte, uint64](maxRecords, recordTTL),
		mutables:   newTTLCache[[32]byte, []byte](maxValues, valueTTL),
		immutables: newTTLCache[[32]byte, []byte](maxValues, valueTTL),
	}
	dc := cfg.DHT
	dc.OnRequest = n.onRequest
	d, err := dhtrpc.New(dc)
	if err != nil {
		return nil, err
	}
	n.dht.Store(d)
	return n, nil
}

func (n *Node) d() *dhtrpc.DHT { return n.dht.Load() }

// DHT is the underlying dht-rpc node.
func (n *Node) DHT() *dhtrpc.DHT { return n.d() }

// Bootstrap joins the network.
func (n *Node) Bootstrap(ctx context.Context) error { return n.d().Bootstrap(ctx) }

// Close stops the node.
func (n *Node) Close() error {
	err := n.d().Close()
	n.mu.Lock()
	var open []*udx.Socket
	for s := range n.sockets {
		open = append(open, s)
	}
	clear(n.sockets)
	n.mu.Unlock()
	for _, s := range open {
		s.Close()
	}
	return err
}

// Stats counts what a node did for others.
type Stats struct {
	HandshakesRelayed uint64 // PEER_HANDSHAKE messages forwarded or answered as a relay
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// onRequest relays handshakes and holepunches for servers it knows and, as
// a persistent node, serves the storage commands.
func (n *Node) onRequest(req *dhtrpc.IncomingRequest) bool {
	if n.d() == nil {
		return false
	}
	switch req.Command {
	case CmdPeerHandshake:
		n.onPeerHandshake(req)
		return true
	case CmdPeerHolepunch:
		n.onPeerHolepunch(req)
		return true
	}
	if !n.d().Persistent() {
		return false
	}
	now := time.Now()
	switch req.Command {
	case CmdFindPeer:
		if req.Target == nil {
			return true
		}
		n.mu.Lock()
		e, ok := n.router[*req.Target]
		n.mu.Unlock()
		if ok && now.Before(e.expires) {
			req.Reply(e.record)
		} else {
			req.Reply(nil)
		}
	case CmdLookup:
		if req.Target == nil {
			return true
		}
		n.mu.Lock()
		recs := n.records.get(*req.Target, maxLookupPeers, now)
		bump, _ := n.bumps.get(*req.Target, now)
		if e, ok := n.router[*req.Target]; ok && now.Before(e.expires) && len(recs) < maxLookupPeers {
			recs = append(recs, e.record)
		}
		n.mu.Unlock()
		if len(recs) == 0 {
			req.Reply(nil)
			return true
		}
		b := compact.AppendUint(nil, uint64(len(recs)))
		for _, r := range recs {
			b = append(b, r...)
		}
		req.Reply(compact.AppendUint(b, bump))
	case CmdAnnounce:
		n.onAnnounce(req, now)
	case CmdUnannounce:
		n.onUnannounce(req)
	case CmdMutablePut:
		n.onMutablePut(req, now)
	case CmdMutableGet:
		if req.Target == nil || req.Value == nil {
			return true
		}
		seq := compact.NewReader(req.Value).Uint()
		n.mu.Lock()
		v, ok := n.mutables.get(*req.Target, now)
		n.mu.Unlock()
		if ok && compact.NewReader(v).Uint() >= seq {
			req.Reply(v)
		} else {
			req.Reply(nil)
		}
	case CmdImmutablePut:
		if req.Target == nil || req.Token == nil || req.Value == nil || Hash(req.Value) != *req.Target {
			return true
		}
		n.mu.Lock()
		n.immutables.set(*req.Target, append([]byte(nil), req.Value...), now)
		n.mu.Unlock()
		req.Reply(nil)
	case CmdImmutableGet:
		if req.Target == nil {
			return true
		}
		n.mu.Lock()
		v, _ := n.immutables.get(*req.Target, now)
		n.mu.Unlock()
		req.Reply(v)
	default:
		return false
	}
	return true
}

func (n *Node) onAnnounce(req *dhtrpc.IncomingRequest, now time.Time) {
	if req.Target == nil || req.Token == nil {
		return
	}
	var ann Announce
	if ann.Decode(req.Value) != nil {
		return
	}
	if ann.Peer == nil {
		if ann.Refresh != nil {
			n.onRefresh(req, *ann.Refresh, now)
		}
		return
	}
	if ann.Signature == nil {
		return
	}
	id := n.d().ID()
	if !Verify(ann.Peer.PublicKey, AnnounceSignable(NSAnnounce, *req.Target, id, *req.Token, ann.Peer, ann.Refresh), *ann.Signature) {
		return
	}
	if len(ann.Peer.RelayAddresses) > maxRelayAddrs {
		ann.Peer.RelayAddresses = ann.Peer.RelayAddresses[:maxRelayAddrs]
	}
	record := ann.Peer.Encode(nil)
	self := Hash(ann.Peer.PublicKey[:]) == *req.Target
	n.mu.Lock()
	if ann.Refresh != nil {
		n.refreshes.set(*ann.Refresh, refreshState{target: *req.Target, publicKey: ann.Peer.PublicKey, record: record, self: self}, now)
	}
	if self {
		n.router[*req.Target] = routerEntry{relay: req.From, record: record, expires: now.Add(recordTTL)}
		n.records.remove(*req.Target, ann.Peer.PublicKey)
	} else {
		cur, _ := n.bumps.get(*req.Target, now)
		if ann.Bump > cur && ann.Bump <= uint64(now.Add(maxBumpDrift).UnixMilli()) {
			n.bumps.set(*req.Target, ann.Bump, now)
		}
		n.records.add(*req.Target, ann.Peer.PublicKey, record, now)
	}
	n.mu.Unlock()
	req.ReplyWith(nil, false, false)
}

// refreshState lets an announcer renew its record without signing again:
// it is kept under the refresh value it announced, and renewed by whoever
// presents a preimage of it, which becomes the next key of the chain.
type refreshState struct {
	target, publicKey [32]byte
	record            []byte
	self              bool
}

func (n *Node) onRefresh(req *dhtrpc.IncomingRequest, token [32]byte, now time.Time) {
	n.mu.Lock()
	key := Hash(token[:])
	r, ok := n.refreshes.get(key, now)
	if !ok {
		n.mu.Unlock()
		return
	}
	if r.self {
		n.router[r.target] = routerEntry{relay: req.From, record: r.record, expires: now.Add(recordTTL)}
		n.records.remove(r.target, r.publicKey)
	} else {
		n.records.add(r.target, r.publicKey, r.record, now)
	}
	n.refreshes.delete(key)
	n.refreshes.set(token, r, now)
	n.mu.Unlock()
	req.ReplyWith(nil, false, false)
}

func (n *Node) onUnannounce(req *dhtrpc.IncomingRequest) {
	if req.Target == nil || req.Token == nil {
		return
	}
	var ann Announce
	if ann.Decode(req.Value) != nil || ann.Peer == nil || ann.Signature == nil {
		return
	}
	id := n.d().ID()
	if !Verify(ann.Peer.PublicKey, AnnounceSignable(NSUnannounce, *req.Target, id, *req.Token, ann.Peer, ann.Refresh), *ann.Signature) {
		return
	}
	n.mu.Lock()
	if Hash(ann.Peer.PublicKey[:]) == *req.Target {
		delete(n.router, *req.Target)
	}
	n.records.remove(*req.Target, ann.Peer.PublicKey)
	n.mu.Unlock()
	req.ReplyWith(nil, false, false)
}

func (n *Node) onMutablePut(req *dhtrpc.IncomingRequest, now time.Time) {
	if req.Target == nil || req.Token == nil || req.Value == nil {
		return
	}
	var p MutablePutRequest
	if p.Decode(req.Value) != nil || Hash(p.PublicKey[:]) != *req.Target {
		return
	}
	if !Verify(p.PublicKey, MutableSignableBytes(p.Seq, p.Value), p.Signature) {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if local, ok := n.mutables.get(*req.Target, now); ok {
		var cur MutableGetResponse
		if cur.Decode(local) == nil {
			if cur.Seq == p.Seq && string(cur.Value) != string(p.Value) {
				req.Error(ErrorSeqReused)
				return
			}
			if p.Seq < cur.Seq {
				req.Error(ErrorSeqTooLow)
				return
			}
		}
	}
	n.mutables.set(*req.Target, (&MutableGetResponse{Seq: p.Seq, Value: p.Value, Signature: p.Signature}).Encode(nil), now)
	req.Reply(nil)
}

// LookupResult is one node's answer to a lookup: who answered (its id is
// nil when it is not persistent), the token it gave, the address it saw
// this node at, and the peers it holds.
type LookupResult struct {
	From   netip.AddrPort
	NodeID *[32]byte
	Token  *[32]byte
	To     netip.AddrPort
	Peers  []Peer
	Bump   uint64
}

func lookupResult(r dhtrpc.Reply) (LookupResult, bool) {
	if r.Response.Value == nil {
		return LookupResult{}, false
	}
	var l LookupRawReply
	if l.Decode(r.Response.Value) != nil {
		return LookupResult{}, false
	}
	return LookupResult{From: r.From, NodeID: r.ID, Token: r.Response.Token, To: r.Response.To, Peers: l.Peers, Bump: l.Bump}, true
}

// Lookup finds the peers announced on topic; onResult sees each node's
// answer as it arrives (nil to ignore).
func (n *Node) Lookup(ctx context.Context, topic [32]byte, onResult func(LookupResult)) ([]dhtrpc.Reply, error) {
	return n.d().Query(ctx, topic, false, CmdLookup, nil, func(r dhtrpc.Reply) {
		if onResult == nil {
			return
		}
		if res, ok := lookupResult(r); ok {
			onResult(res)
		}
	})
}

// Announce announces the signer's public key on topic, reachable through
// relayAddresses, at the closest nodes: a lookup, then to each closest node
// an announce signed for its id and token. onResult (nil to ignore) sees
// the lookup's answers as they arrive.
func (n *Node) Announce(ctx context.Context, topic [32]byte, signer Signer, relayAddresses []netip.AddrPort, onResult func(LookupResult)) error {
	_, err := n.announce(ctx, topic, signer, relayAddresses, onResult)
	return err
}

// announce announces and returns the nodes that stored the record, each
// with where it saw us: the relays a holepunching server names.
func (n *Node) announce(ctx context.Context, topic [32]byte, signer Signer, relayAddresses []netip.AddrPort, onResult func(LookupResult)) ([]RelayInfo, error) {
	replies, err := n.Lookup(ctx, topic, onResult)
	if err != nil {
		return nil, err
	}
	peer := &Peer{PublicKey: signer.PublicKey(), RelayAddresses: relayAddresses}
	if peer.RelayAddresses == nil {
		peer.RelayAddresses = []netip.AddrPort{}
	}
	return n.commitSigned(ctx, replies, topic, CmdAnnounce, NSAnnounce, signer, peer)
}

// Unannounce removes the signer's announcement of topic from the nodes that
// hold it; onResult (nil to ignore) sees the lookup's answers as they
// arrive.
func (n *Node) Unannounce(ctx context.Context, topic [32]byte, signer Signer, onResult func(LookupResult)) error {
	pk := signer.PublicKey()
	var holders []dhtrpc.Reply
	var mu sync.Mutex
	_, err := n.d().Query(ctx, topic, false, CmdLookup, nil, func(r dhtrpc.Reply) {
		l, ok := lookupResult(r)
		if !ok {
			return
		}
		if onResult != nil {
			onResult(l)
		}
		if r.ID == nil || r.Response.Token == nil {
			return
		}
		found := len(l.Peers) >= maxLookupPeers
		for _, p := range l.Peers {
			found = found || p.PublicKey == pk
		}
		if found {
			mu.Lock()
			holders = append(holders, r)
			mu.Unlock()
		}
	})
	if err != nil {
		return err
	}
	_, err = n.commitSigned(ctx, holders, topic, CmdUnannounce, NSUnannounce, signer, &Peer{PublicKey: pk, RelayAddresses: []netip.AddrPort{}})
	return err
}

// commitSigned sends command to each reply with an announce the signer
// signed for that node's id and token; a signature that does not verify is
// not sent. It returns the nodes that accepted, each with where it saw us.
func (n *Node) commitSigned(ctx context.Context, replies []dhtrpc.Reply, topic [32]byte, command uint64, ns [32]byte, signer Signer, peer *Peer) ([]RelayInfo, error) {
	type result struct {
		stored RelayInfo
		err    error
	}
	errs := make(chan result, len(replies))
	sent := 0
	for _, r := range replies {
		if r.ID == nil || r.Response.Token == nil {
			continue
		}
		sent++
		go func() {
			sig, err := signer.Sign(ctx, ns, topic, *r.ID, *r.Response.Token, peer)
			if err == nil && !Verify(peer.PublicKey, AnnounceSignable(ns, topic, *r.ID, *r.Response.Token, peer, nil), sig) {
				err = ErrBadSignature
			}
			if err != nil {
				errs <- result{err: err}
				return
			}
			value := (&Announce{Peer: peer, Signature: &sig}).Encode(nil)
			res, _, _, err := n.d().Request(ctx, r.From, false, command, &topic, value, r.Response.Token)
			if err != nil {
				errs <- result{err: err}
				return
			}
			errs <- result{stored: RelayInfo{RelayAddress: r.From, PeerAddress: res.To}}
		}()
	}
	var stored []RelayInfo
	var first error
	for range sent {
		if r := <-errs; r.err == nil {
			stored = append(stored, r.stored)
		} else if first == nil {
			first = r.err
		}
	}
	if sent > 0 && len(stored) == 0 {
		return nil, fmt.Errorf("hyperdht: no node accepted: %w", first)
	}
	return stored, nil
}

// FindPeer finds the record of the server with publicKey at the nodes that
// route to it.
func (n *Node) FindPeer(ctx context.Context, publicKey [32]byte) (*Peer, netip.AddrPort, error) {
	var found *Peer
	var from netip.AddrPort
	var mu sync.Mutex
	_, err := n.d().Query(ctx, Hash(publicKey[:]), false, CmdFindPeer, nil, func(r dhtrpc.Reply) {
		if r.Response.Value == nil {
			return
		}
		var p Peer
		if p.Decode(r.Response.Value) == nil && p.PublicKey == publicKey {
			mu.Lock()
			if found == nil {
				found, from = &p, r.From
			}
			mu.Unlock()
		}
	})
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	if found == nil {
		return nil, netip.AddrPort{}, ErrPeerNotFound
	}
	return found, from, nil
}

// ImmutablePut stores value at the closest nodes to its hash and returns
// the hash.
func (n *Node) ImmutablePut(ctx context.Context, value []byte) ([32]byte, error) {
	target := Hash(value)
	replies, err := n.d().Query(ctx, target, false, CmdImmutableGet, nil, nil)
	if err != nil {
		return target, err
	}
	_, err = n.d().Commit(ctx, replies, false, CmdImmutablePut, target, value)
	return target, err
}

// ImmutableGet finds the value whose hash is target.
func (n *Node) ImmutableGet(ctx context.Context, target [32]byte) ([]byte, error) {
	var value []byte
	var mu sync.Mutex
	_, err := n.d().Query(ctx, target, false, CmdImmutableGet, nil, func(r dhtrpc.Reply) {
		if r.Response.Value != nil && Hash(r.Response.Value) == target {
			mu.Lock()
			value = r.Response.Value
			mu.Unlock()
		}
	})
	return value, err
}

// MutablePut signs value at seq with kp and stores it at the closest nodes
// to the hash of the public key.
func (n *Node) MutablePut(ctx context.Context, kp *KeyPair, value []byte, seq uint64) error {
	target := Hash(kp.Public[:])
	sig := Sign(kp, MutableSignableBytes(seq, value))
	put := (&MutablePutRequest{PublicKey: kp.Public, Seq: seq, Value: value, Signature: sig}).Encode(nil)
	replies, err := n.d().Query(ctx, target, false, CmdMutableGet, compact.AppendUint(nil, 0), nil)
	if err != nil {
		return err
	}
	_, err = n.d().Commit(ctx, replies, false, CmdMutablePut, target, put)
	return err
}

// MutableGet finds the newest value of publicKey with a sequence number of
// at least seq and a valid signature.
func (n *Node) MutableGet(ctx context.Context, publicKey [32]byte, seq uint64) (*MutableGetResponse, error) {
	var best *MutableGetResponse
	var mu sync.Mutex
	_, err := n.d().Query(ctx, Hash(publicKey[:]), false, CmdMutableGet, compact.AppendUint(nil, seq), func(r dhtrpc.Reply) {
		var v MutableGetResponse
		if r.Response.Value == nil || v.Decode(r.Response.Value) != nil || v.Seq < seq {
			return
		}
		if !Verify(publicKey, MutableSignableBytes(v.Seq, v.Value), v.Signature) {
			return
		}
		mu.Lock()
		if best == nil || v.Seq > best.Seq {
			best = &v
		}
		mu.Unlock()
	})
	return best, err
}
