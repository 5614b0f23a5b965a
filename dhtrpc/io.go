package dhtrpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/udx"
)

// UDX is the udx instance the node's sockets belong to.
func (d *DHT) UDX() *udx.UDX { return d.u }

// ServerSocket is the socket persistent traffic uses.
func (d *DHT) ServerSocket() *udx.Socket { return d.server }

// ClientSocket is the socket a firewalled node sends from.
func (d *DHT) ClientSocket() *udx.Socket { return d.client }

// Socket is the socket the node sends requests from: the client socket
// while firewalled, else the server socket. Streams to peers the node
// reached through the DHT use it too.
func (d *DHT) Socket() *udx.Socket {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sendSocket()
}

// ID is the node id: its persistent id once persistent, else the random id
// its table is keyed on.
func (d *DHT) ID() [IDSize]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.table.id
}

// Persistent reports whether the node serves as a persistent node.
func (d *DHT) Persistent() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.ephemeral
}

// Firewalled reports whether the node has yet to prove that others can
// reach its server socket unasked.
func (d *DHT) Firewalled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.firewalled
}

// PublicAddr is the address the network sees the node at, once sampled.
func (d *DHT) PublicAddr() netip.AddrPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nat.addr()
}

// Close stops the node; pending requests fail with ErrClosed.
func (d *DHT) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	ps := make([]*pending, 0, len(d.inflight))
	for _, p := range d.inflight {
		ps = append(ps, p)
	}
	d.inflight = map[uint16]*pending{}
	d.queue = fairQueue{}
	d.mu.Unlock()
	for _, p := range ps {
		if p.timer != nil {
			p.timer.Stop()
		}
		p.done <- reply{err: ErrClosed}
	}
	close(d.stop)
	d.wg.Wait()
	d.server.Close()
	d.client.Close()
	return nil
}

// clock drains the congestion window and rotates token secrets.
func (d *DHT) clock() {
	defer d.wg.Done()
	t := time.NewTicker(windowSlot)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.mu.Lock()
		if d.rotate--; d.rotate == 0 {
			d.rotate = tokenRotation
			d.secrets[0], d.secrets[1] = d.secrets[1], blake2b.Sum256(d.secrets[0][:])
		}
		d.ticks++
		upkeep := d.ticks%ticksPerMaintain == 0
		d.window.drain()
		d.sendWaiting()
		d.mu.Unlock()
		if upkeep {
			d.tick(time.Now())
		}
	}
}

// sendWaiting sends waiting requests, owner by owner, while the window
// has room; mu is held.
func (d *DHT) sendWaiting() {
	for !d.window.full() {
		p := d.queue.pop()
		if p == nil {
			return
		}
		d.sendNow(p)
	}
}

// token is the token for host under secret i: BLAKE2b-256 of the dotted
// host, keyed with the secret.
func (d *DHT) token(host netip.Addr, i int) [IDSize]byte {
	h, _ := blake2b.New256(d.secrets[i][:])
	h.Write([]byte(host.String()))
	var t [IDSize]byte
	h.Sum(t[:0])
	return t
}

// sendSocket is the socket requests leave from: the client socket while
// firewalled. mu is held.
func (d *DHT) sendSocket() *udx.Socket {
	if d.firewalled {
		return d.client
	}
	return d.server
}

// Request sends one request to addr and waits for its response, trying up
// to four times a second apart.
func (d *DHT) Request(ctx context.Context, to netip.AddrPort, internal bool, command uint64, target *[IDSize]byte, value []byte, token *[IDSize]byte) (*Response, netip.AddrPort, *[IDSize]byte, error) {
	r, err := d.request(ctx, to, internal, command, target, value, token, nil)
	return r.res, r.from, r.fromID, err
}

func (d *DHT) request(ctx context.Context, to netip.AddrPort, internal bool, command uint64, target *[IDSize]byte, value []byte, token *[IDSize]byte, socket *udx.Socket) (reply, error) {
	if err := ctx.Err(); err != nil {
		return reply{}, err
	}
	who := ownerOf(ctx)
	if who.Rate != nil {
		if err := who.Rate.Wait(ctx); err != nil {
			return reply{}, err
		}
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return reply{}, ErrClosed
	}
	if len(d.inflight) >= maxHeld {
		d.stats.Busy++
		d.mu.Unlock()
		return reply{}, fmt.Errorf("%w: the node holds %d requests", ErrBusy, maxHeld)
	}
	o, err := d.queue.take(who.Key)
	if err != nil {
		d.stats.Busy++
		d.mu.Unlock()
		return reply{}, fmt.Errorf("%w: its caller holds %d requests", err, maxHeldPerOwner)
	}
	if len(d.inflight) == 0 {
		// Progress is judged from the moment the node has work again.
		d.lastSend, d.lastReply = time.Now(), time.Now()
	}
	if socket == nil {
		socket = d.sendSocket()
	}
	// Fewer than maxHeld of the 65,536 ids are taken: a free one is near.
	tid := d.tid
	for d.inflight[tid] != nil {
		tid++
	}
	d.tid = tid + 1
	p := &pending{
		req:    Request{TID: tid, To: to, Token: token, Internal: internal, Command: command, Target: target, Value: value},
		to:     to,
		socket: socket,
		done:   make(chan reply, 1),
		owner:  o,
	}
	if !d.ephemeral && socket == d.server {
		id := d.table.id
		p.req.ID = &id
	}
	p.buf = p.req.AppendBinary(nil)
	d.inflight[tid] = p
	d.sendOrWait(p)
	d.mu.Unlock()
	select {
	case r := <-p.done:
		return r, r.err
	case <-ctx.Done():
		d.mu.Lock()
		if d.inflight[tid] == p {
			d.forget(p)
		}
		d.mu.Unlock()
		return reply{}, ctx.Err()
	}
}

// sendOrWait sends p if the window has room and nobody waits before it,
// else queues it behind its owner's earlier requests; mu is held.
func (d *DHT) sendOrWait(p *pending) {
	if d.window.full() || d.queue.waiting > 0 {
		d.queue.push(p)
		d.sendWaiting()
		return
	}
	d.sendNow(p)
}

// forget lets go of a held request that is answered, timed out or
// abandoned: a request that was sent gives its send back to the window, as
// dht-rpc's does, so that replies clock further sends. mu is held.
func (d *DHT) forget(p *pending) {
	delete(d.inflight, p.req.TID)
	if p.waiting {
		d.queue.remove(p)
	}
	if p.timer != nil {
		p.timer.Stop()
		d.window.recv()
	}
	d.queue.give(p.owner)
	d.sendWaiting()
}

// Stats counts a node's traffic.
type Stats struct {
	RequestsSent uint64 // every transmission, retries included
	Timeouts     uint64
	Busy         uint64 // requests refused at once: the node or its caller held too many
}

// Stats returns the node's counters.
func (d *DHT) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Health returns what the node's request engine holds and when it last
// made progress.
func (d *DHT) Health() Health {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Health{Held: len(d.inflight), Waiting: d.queue.waiting, LastSend: d.lastSend, LastReply: d.lastReply}
}

// sendNow transmits p and arms its retry; mu is held.
func (d *DHT) sendNow(p *pending) {
	p.sent++
	d.stats.RequestsSent++
	d.window.send()
	d.lastSend = time.Now()
	p.socket.Send(p.buf, p.to)
	if p.timer == nil {
		p.timer = time.AfterFunc(requestTimeout, func() { d.onRequestTimeout(p) })
	} else {
		p.timer.Reset(requestTimeout)
	}
}

func (d *DHT) onRequestTimeout(p *pending) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inflight[p.req.TID] != p || p.waiting {
		return
	}
	if p.sent > requestRetries {
		d.stats.Timeouts++
		d.forget(p)
		if p.req.To.IsValid() {
			d.table.remove(NodeID(p.to))
		}
		p.done <- reply{err: ErrTimeout}
		return
	}
	d.sendOrWait(p)
}

// handle is every socket's raw handler.
func (d *DHT) handle(p []byte, from netip.AddrPort, socket *udx.Socket) {
	if socket == nil || !IsMessage(p) || from.Port() == 0 || !from.Addr().Is4() {
		return
	}
	m, err := Decode(p)
	if err != nil {
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	expected := d.sendSocket()
	d.mu.Unlock()
	sample := socket == expected
	switch m := m.(type) {
	case *Request:
		d.onRequest(m, from, socket, sample)
	case *Response:
		d.onResponse(m, from, socket, sample)
	}
}

// validID returns id when it is the id of from, else nil: only nodes whose
// claimed id matches their address count as persistent.
func validID(id *[IDSize]byte, from netip.AddrPort) *[IDSize]byte {
	if id == nil || *id != NodeID(from) {
		return nil
	}
	return id
}

func (d *DHT) onResponse(res *Response, from netip.AddrPort, socket *udx.Socket, sample bool) {
	id := validID(res.ID, from)
	d.mu.Lock()
	p := d.inflight[res.TID]
	if p == nil || p.to != from {
		d.mu.Unlock()
		return
	}
	if p.timer == nil {
		d.mu.Unlock()
		return // not sent yet: this cannot be its response
	}
	d.lastReply = time.Now()
	d.forget(p)
	d.addFromNetwork(id, from, res.To, sample)
	d.mu.Unlock()
	// The requester reads the response on its own goroutine, after the
	// socket has reused the buffer the value was decoded from.
	res.Value = bytes.Clone(res.Value)
	p.done <- reply{res: res, from: from, fromID: id, socket: socket}
}

// addFromNetwork learns a node and, from a message that arrived on the
// expected socket, how the network sees us. mu is held.
func (d *DHT) addFromNetwork(id *[IDSize]byte, from, to netip.AddrPort, sample bool) {
	if sample && to.IsValid() {
		d.nat.add(from, to)
	}
	if id == nil {
		return
	}
	c := Contact{ID: *id, Addr: from, seen: time.Now()}
	if d.table.add(c) || d.closed {
		return
	}
	// A full bucket keeps its nodes while they answer: ping the one heard
	// from longest ago and let the newcomer in only if it is gone.
	if old, ok := d.table.oldest(c.ID); ok && !d.evicting[old.ID] {
		d.evicting[old.ID] = true
		go d.checkEvict(old, c)
	}
}

func (d *DHT) checkEvict(old, newcomer Contact) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*requestTimeout)
	defer cancel()
	_, err := d.request(ctx, old.Addr, true, CmdPing, nil, nil, nil, nil)
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.evicting, old.ID)
	if err != nil && !d.closed {
		d.table.remove(old.ID)
		d.table.add(newcomer)
	}
}

// checkHinted pings a table node someone reported down, at most
// maxChecks at a time.
func (d *DHT) checkHinted(addr netip.AddrPort) {
	id := NodeID(addr)
	d.mu.Lock()
	ok := d.table.has(id) && d.checks < maxChecks
	if ok {
		d.checks++
	}
	d.mu.Unlock()
	if !ok {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*requestTimeout)
		defer cancel()
		d.request(ctx, addr, true, CmdPing, nil, nil, nil, nil)
		d.mu.Lock()
		d.checks--
		d.mu.Unlock()
	}()
}

// tick is the node's periodic upkeep (about every 5 s): it notices a
// wake-up from sleep (the node goes back to ephemeral, its address may have
// changed), counts an adaptive node towards persistence, and pings nodes not
// heard from for a while; those that do not answer leave the table through
// the request timeout.
func (d *DHT) tick(now time.Time) {
	d.mu.Lock()
	adaptive := !d.cfg.Persistent && !d.cfg.Bootstrapper
	if now.Sub(d.lastTick) > sleepingGap {
		d.stableTicks = moreStableTicks
		if adaptive {
			d.ephemeral = true
		}
	}
	d.lastTick = now
	check := false
	if d.bootstrapped && adaptive && d.ephemeral {
		if d.stableTicks--; d.stableTicks <= 0 {
			if d.lastHost == d.nat.addr().Addr() {
				d.stableTicks = moreStableTicks // this network was checked already
			} else {
				check = true
			}
		}
	}
	stale := d.table.stale(now.Add(-staleAfter), pingsPerTick)
	d.refreshTicks--
	refresh := d.bootstrapped && d.refreshTicks <= 0
	if refresh {
		d.refreshTicks = refreshTicks
	}
	d.mu.Unlock()
	if refresh {
		// An idle node looks itself up again now and then so that its
		// table keeps up with the network.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d.FindNode(ctx, d.ID())
		}()
	}
	if check {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if d.updateNetworkState(ctx, false) {
				d.FindNode(ctx, d.ID())
			}
		}()
	}
	for _, c := range stale {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*requestTimeout)
			defer cancel()
			d.request(ctx, c.Addr, true, CmdPing, nil, nil, nil, nil)
		}()
	}
}

func (d *DHT) onRequest(req *Request, from netip.AddrPort, socket *udx.Socket, sample bool) {
	in := &IncomingRequest{Request: req, From: from, FromID: validID(req.ID, from), d: d, socket: socket}
	d.mu.Lock()
	if req.Token != nil {
		t0, t1 := d.token(from.Addr(), 0), d.token(from.Addr(), 1)
		if *req.Token != t0 && *req.Token != t1 {
			d.mu.Unlock()
			d.sendReply(in, ErrInvalidToken, nil, true, true, from)
			return
		}
	}
	if in.FromID != nil {
		d.addFromNetwork(in.FromID, from, req.To, sample)
	}
	d.mu.Unlock()
	if !req.Internal {
		if d.cfg.OnRequest == nil || !d.cfg.OnRequest(in) {
			d.sendReply(in, ErrUnknownCommand, nil, false, req.Target != nil, from)
		}
		return
	}
	switch req.Command {
	case CmdPing:
		d.sendReply(in, 0, nil, false, false, from)
	case CmdDownHint:
		// "The node at this address seems down": if it is in our table,
		// check it; a failed ping removes it.
		if len(req.Value) >= 6 {
			r := compact.NewReader(req.Value)
			d.checkHinted(r.IPv4())
		}
		d.sendReply(in, 0, nil, false, false, from)
	case CmdPingNAT:
		if len(req.Value) < 2 {
			return
		}
		port := binary.LittleEndian.Uint16(req.Value)
		if port == 0 {
			return
		}
		d.sendReply(in, 0, nil, false, false, netip.AddrPortFrom(from.Addr(), port))
	case CmdFindNode:
		if req.Target == nil {
			return
		}
		d.sendReply(in, 0, nil, false, true, from)
	case CmdDelayedPing:
		if len(req.Value) < 4 {
			return
		}
		delay := time.Duration(binary.LittleEndian.Uint32(req.Value)) * time.Millisecond
		if delay > maxPingDelay {
			return
		}
		time.AfterFunc(delay, func() { d.sendReply(in, 0, nil, false, false, from) })
	default:
		d.sendReply(in, ErrUnknownCommand, nil, false, req.Target != nil, from)
	}
}

// sendReply answers in on the socket it came in on, to addr.
func (d *DHT) sendReply(in *IncomingRequest, code uint64, value []byte, withToken, withCloser bool, addr netip.AddrPort) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	res := Response{TID: in.TID, To: addr, Error: code, Value: value}
	if !d.ephemeral && in.socket == d.server {
		id := d.table.id
		res.ID = &id
	}
	if withToken {
		t := d.token(addr.Addr(), 1)
		res.Token = &t
	}
	if withCloser && in.Target != nil {
		for _, c := range d.table.closest(in.Target, K) {
			res.CloserNodes = append(res.CloserNodes, c.Addr)
		}
	}
	d.mu.Unlock()
	in.socket.Send(res.AppendBinary(nil), addr)
}
