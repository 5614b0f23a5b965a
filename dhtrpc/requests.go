package dhtrpc

import (
	"context"
	"errors"
	"time"

	"golang.org/x/time/rate"
)

// Bounds on what a node holds for its callers. A request is held from the
// moment it is made until it is answered, times out or its caller gives up,
// whether it is waiting for the congestion window or sent.
const (
	// maxHeld bounds the requests one node holds. It stays well inside the
	// 16-bit transaction id space, so a free id is always found within a
	// few probes and a full space can never make the search loop.
	maxHeld = 1 << 14
	// maxHeldPerOwner bounds one owner's share: enough for a relay
	// session at its limits (32 queries of 10 requests each, and 64
	// connects), far below maxHeld.
	maxHeldPerOwner = 1024
)

// ErrBusy means a request was refused at once because the node, or the
// caller's share of it, already holds as many requests as it may.
var ErrBusy = errors.New("dhtrpc: too many requests in flight")

// Owner is who a request is made for: a relay session, say.
type Owner struct {
	// Key tells owners apart; "" is the node itself.
	Key string
	// Rate, if not nil, paces the owner's new requests (retries are not
	// paced again), so that no owner can keep the network it asks busy.
	Rate *rate.Limiter
}

type ownerKey struct{}

// WithOwner marks the requests made under ctx as o's. Requests waiting for
// the congestion window are served round robin between owners, and each
// owner holds at most its share, so one owner's flood delays only itself.
// Requests without an owner are the node's own, served as one more owner.
func WithOwner(ctx context.Context, o Owner) context.Context {
	return context.WithValue(ctx, ownerKey{}, o)
}

func ownerOf(ctx context.Context) Owner {
	o, _ := ctx.Value(ownerKey{}).(Owner)
	return o
}

// congestion is dht-rpc's congestion window: at most maxWindow sends in the
// current slot and 2×maxWindow over the last windowSlots slots; each reply,
// final timeout or abandoned request gives back a send of the current slot,
// and the oldest slot is forgotten every windowSlot.
type congestion struct {
	slot  int
	total int
	sent  [windowSlots]int
}

func (c *congestion) full() bool {
	return c.total >= 2*maxWindow || c.sent[c.slot] >= maxWindow
}

func (c *congestion) send() {
	c.total++
	c.sent[c.slot]++
}

func (c *congestion) recv() {
	if c.sent[c.slot] > 0 {
		c.sent[c.slot]--
		c.total--
	}
}

func (c *congestion) drain() {
	c.slot = (c.slot + 1) % windowSlots
	c.total -= c.sent[c.slot]
	c.sent[c.slot] = 0
}

// owner is one caller's share of the node: what it holds and its requests
// waiting for the window, oldest first.
type owner struct {
	key        string
	held       int
	head, tail *pending
	// Owners with waiting requests form a ring, served in turn.
	prev, next *owner
	inRing     bool
}

// fairQueue holds the requests waiting for the congestion window, one FIFO
// per owner, and serves the owners round robin.
type fairQueue struct {
	owners  map[string]*owner
	ring    *owner // the owner served next
	waiting int
}

// take counts one more request against key's share.
func (q *fairQueue) take(key string) (*owner, error) {
	o := q.owners[key]
	if o == nil {
		if q.owners == nil {
			q.owners = map[string]*owner{}
		}
		o = &owner{key: key}
		q.owners[key] = o
	}
	if o.held >= maxHeldPerOwner {
		return nil, ErrBusy
	}
	o.held++
	return o, nil
}

// give returns a request's place in its owner's share; p must not be
// waiting.
func (q *fairQueue) give(o *owner) {
	if o.held--; o.held == 0 {
		delete(q.owners, o.key)
	}
}

// push puts p at the end of its owner's queue; an owner that had nothing
// waiting joins the ring last, behind every owner already waiting.
func (q *fairQueue) push(p *pending) {
	o := p.owner
	p.waiting = true
	p.prev, p.next = o.tail, nil
	if o.tail != nil {
		o.tail.next = p
	} else {
		o.head = p
	}
	o.tail = p
	q.waiting++
	if o.inRing {
		return
	}
	o.inRing = true
	if q.ring == nil {
		o.prev, o.next = o, o
		q.ring = o
		return
	}
	last := q.ring.prev
	o.prev, o.next = last, q.ring
	last.next = o
	q.ring.prev = o
}

// remove takes a waiting p out of the queue.
func (q *fairQueue) remove(p *pending) {
	o := p.owner
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		o.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		o.tail = p.prev
	}
	p.prev, p.next, p.waiting = nil, nil, false
	q.waiting--
	if o.head == nil {
		q.leaveRing(o)
	}
}

func (q *fairQueue) leaveRing(o *owner) {
	if !o.inRing {
		return
	}
	o.inRing = false
	if o.next == o {
		q.ring = nil
	} else {
		o.prev.next = o.next
		o.next.prev = o.prev
		if q.ring == o {
			q.ring = o.next
		}
	}
	o.prev, o.next = nil, nil
}

// pop takes the oldest waiting request of the owner whose turn it is, and
// passes the turn on.
func (q *fairQueue) pop() *pending {
	o := q.ring
	if o == nil {
		return nil
	}
	p := o.head
	q.ring = o.next
	q.remove(p)
	return p
}

// Health tells whether a node's request engine makes progress.
type Health struct {
	Held      int // requests held: sent or waiting
	Waiting   int // of those, waiting for the congestion window
	LastSend  time.Time
	LastReply time.Time
}

// Stalled says why a node holding requests has made no progress for
// longer than after, or "" if it has: requests that waited with nothing
// sent, or requests sent with nothing answered.
func (h Health) Stalled(now time.Time, after time.Duration) string {
	switch {
	case h.Waiting > 0 && now.Sub(h.LastSend) > after:
		return "requests are waiting and none was sent"
	case h.Held > 0 && now.Sub(h.LastReply) > after:
		return "requests are in flight and none was answered"
	}
	return ""
}
