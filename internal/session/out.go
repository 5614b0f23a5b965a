package session

import (
	"slices"
	"sync"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/relay"
)

// outItem is a message queued for the client.
type outItem struct {
	typ     relay.MessageType
	payload []byte
	urgent  bool
	data    *stream // stream data: the stream whose credit it holds
	n       int
	lease   routing.Lease // stream data: payload's buffer, released once written
	// frame is, for stream data, the frame payload arrived in: its bytes
	// in front of payload are free for the message's header.
	frame []byte
	// chunk is the bytes of stream data that came as one buffer, which
	// the writer may join with the stream's next queued chunks.
	chunk []byte
	// parts is, for a message of the peer's that came in parts and was
	// held in their frames, each part: one buffer to the client, joined
	// as a chunk is.
	parts []heldPart
	// credited: the worker was granted the data's credit when it was
	// gathered (a message that came in parts, which holds no frame);
	// lent is the buffer it was gathered in, if Config.Batches lent it.
	credited bool
	lent     *[]byte
}

// heldPart is a part of a peer's message held in the frame it came in.
type heldPart struct {
	bytes []byte
	lease routing.Lease
}

// Joining queued chunks of a stream into one data message: the client's
// cost is largely per message (a browser's message event, the mux, the
// stream's push), and each message is a system call here. Each chunk stays
// a buffer of its own in the message: over a custodial stream a chunk is
// one message of the peer's SecretStream, and the client hands each buffer
// on as one data event, which Protomux and all built on it read as one
// message. The join takes
// only what is already queued, so it never waits for more. Only a
// transport that sends a message gathered from parts (the WebSocket one)
// joins; over another, a joined message would be copied together into a
// buffer the session then keeps.
type gatherWriter interface {
	WriteMessageVec(parts [][]byte) error
}

const (
	joinMax    = 128 << 10 // stream bytes in one joined message
	joinChunks = 16        // chunks in one joined message
)

// outQueue is what waits to be written to the client: urgent messages
// first, the rest in order. Stream data is bounded by credit; everything
// else by the control limit. It owns its writer, a goroutine that runs
// only while there is something to write (an idle session holds none)
// and hands each message, or run of joined chunks, to write outside the
// queue's lock. The lock is the queue's own: a caller may hold the
// session's around a call, never the other way round.
type outQueue struct {
	// Set before use.
	write   func(it outItem, run []outItem, scratch *writeScratch) bool // false: stop writing, the session is over
	closed  func()                                                      // the queue emptied after close
	release func(outItem)                                               // gives back the buffer an item's bytes lie in
	joins   bool                                                        // chunks may be joined into one message
	budget  Budget                                                      // holds the stream data queued and being written (nil: none)

	mu      sync.Mutex
	urgent  []outItem
	fifo    []outItem
	control int // non-data items queued
	closing bool
	writing bool // the writer is running
	dropped bool // the session is over: data is let go as it comes
}

// writeScratch is the writer's room: the chunks joined to the one it
// writes, and a joined message's parts. The writer runs and ends with
// every burst of data, and allocating this room for each run was a large
// share of what a busy session allocated, so each run borrows it from
// writeScratches.
type writeScratch struct {
	run   [joinChunks - 1]outItem
	parts [4 * joinChunks][]byte // room for messages of two or three parts
	head  [16]byte
	lens  [joinChunks - 1][9]byte // each later chunk's length
}

var writeScratches = sync.Pool{New: func() any { return new(writeScratch) }}

// signal makes sure the writer runs; q.mu is held.
func (q *outQueue) signal() {
	if !q.writing {
		q.writing = true
		go q.run() // ends once the queue is empty
	}
}

// run is the writer: it writes what is queued until the queue is empty,
// then runs closed if the queue was closed.
func (q *outQueue) run() {
	scratch := writeScratches.Get().(*writeScratch)
	defer func() {
		clear(scratch.run[:]) // holds no buffers while pooled
		clear(scratch.parts[:])
		writeScratches.Put(scratch)
	}()
	for {
		q.mu.Lock()
		it, ok := q.pop()
		run := scratch.run[:0]
		if ok && q.joins && it.joinable() {
			run = q.popChunks(it.data, joinMax-it.n, run)
		}
		closing := q.closing
		if !ok {
			q.writing = false
		}
		q.mu.Unlock()
		if !ok {
			if closing {
				q.closed()
			}
			return
		}
		if !q.write(it, run, scratch) {
			q.mu.Lock()
			q.writing = false
			q.mu.Unlock()
			return
		}
	}
}

// Push queues it; false when the control limit is exceeded.
func (q *outQueue) Push(it outItem, limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.push(it, limit)
}

// CloseAfter closes the queue once what is queued so far is written, and
// reports false if it was closing already.
func (q *outQueue) CloseAfter() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing {
		return false
	}
	q.closing = true
	q.signal()
	return true
}

// Closing reports whether the queue was closed.
func (q *outQueue) Closing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closing
}

// Drop lets go of everything queued, for a session that is over: the
// data's buffers and what it held of the budget. The items the writer has
// popped are its own to let go.
func (q *outQueue) Drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.drop()
}

// push is Push with q.mu held.
func (q *outQueue) push(it outItem, limit int) bool {
	switch {
	case it.data == nil:
		if q.control >= limit {
			return false
		}
		q.control++
	case q.dropped:
		q.release(it)
		return true
	default:
		q.hold(it.n)
	}
	if it.urgent {
		q.urgent = append(q.urgent, it)
	} else {
		q.fifo = append(q.fifo, it)
	}
	q.signal()
	return true
}

func (q *outQueue) pop() (outItem, bool) {
	var it outItem
	switch {
	case len(q.urgent) > 0:
		it = q.urgent[0]
		q.urgent[0] = outItem{}
		q.urgent = q.urgent[1:]
	case len(q.fifo) > 0:
		it = q.fifo[0]
		q.fifo[0] = outItem{}
		q.fifo = q.fifo[1:]
	default:
		return it, false
	}
	if it.data == nil {
		q.control--
	}
	q.tidy()
	return it, true
}

// joinable reports whether it is stream data that came as one buffer,
// whole or held in parts, which the writer may join with others.
func (it *outItem) joinable() bool { return it.chunk != nil || it.parts != nil }

// popChunks pops, into run, the chunks of st that come next in order, as
// long as no urgent message waits and they fit in room bytes and the run.
func (q *outQueue) popChunks(st *stream, room int, run []outItem) []outItem {
	for len(q.urgent) == 0 && len(q.fifo) > 0 && len(run) < cap(run) {
		it := q.fifo[0]
		if it.data != st || !it.joinable() || it.n > room {
			break
		}
		room -= it.n
		run = append(run, it)
		q.fifo[0] = outItem{}
		q.fifo = q.fifo[1:]
	}
	q.tidy()
	return run
}

// drop is Drop with q.mu held.
func (q *outQueue) drop() {
	for _, it := range slices.Concat(q.urgent, q.fifo) {
		q.release(it)
		q.give(it.n)
	}
	q.urgent, q.fifo, q.control, q.dropped = nil, nil, 0, true
}

func (q *outQueue) take(n int) bool { return q.budget == nil || q.budget.Take(n) }

func (q *outQueue) hold(n int) {
	if q.budget != nil {
		q.budget.Hold(n)
	}
}

func (q *outQueue) give(n int) {
	if q.budget != nil {
		q.budget.Give(n)
	}
}

// tidy drops emptied queues: an idle session holds none.
func (q *outQueue) tidy() {
	if len(q.urgent) == 0 && len(q.fifo) == 0 {
		q.urgent, q.fifo = nil, nil
	}
}

// writeOut writes one message popped from the queue, or a run of a
// stream's chunks joined into one, and grants credit for the stream data
// written; it runs on the queue's writer, the only writer of stream
// messages. False means the session is over.
func (s *Session) writeOut(it outItem, run []outItem, sc *writeScratch) bool {
	defer s.contain()
	n := it.n
	for _, r := range run {
		n += r.n
	}
	if s.ctx.Err() != nil {
		s.letGo(it, run, n)
		return false
	}
	// Gathered messages had their credit granted as they came; what was
	// gathered while they waited is owed once none waits.
	consume, gathered := 0, 0
	count := func(r outItem) {
		if r.credited {
			gathered++
		} else {
			consume += r.n
		}
	}
	count(it)
	for _, r := range run {
		count(r)
	}
	var err error
	switch room := len(it.frame) - len(it.payload); {
	case len(run) > 0 || it.credited || it.parts != nil:
		ps := it.appendBytes(append(sc.parts[:0], relay.AppendDataBuffersHeader(sc.head[:0], it.data.worker, 1+len(run), it.n)))
		for i, r := range run {
			ps = r.appendBytes(append(ps, compact.AppendUint(sc.lens[i][:0], uint64(r.n))))
		}
		err = s.ch.SendPayloadVec(relay.TypeData, ps)
		clear(ps)
	case room > 0:
		err = s.ch.SendPayloadIn(it.typ, it.frame, room)
	default:
		err = s.ch.SendPayload(it.typ, it.payload)
	}
	s.letGo(it, run, n)
	if err != nil {
		s.Fail(err)
		return false
	}
	if it.data != nil {
		s.mu.Lock()
		if st := it.data; gathered > 0 {
			if st.waiting -= gathered; st.waiting == 0 {
				consume += st.owed
				st.owed = 0
			}
		}
		grant := it.data.ledger.Consume(consume)
		worker := it.data.worker
		s.mu.Unlock()
		if grant > 0 {
			s.link.Send(routing.KindCredit, routing.AppendCredit(nil, routing.Credit{Alias: worker, Bytes: grant}))
		}
	}
	return true
}

// appendBytes appends the stream bytes of it, one buffer, to ps.
func (it *outItem) appendBytes(ps [][]byte) [][]byte {
	if it.parts == nil {
		return append(ps, it.chunk)
	}
	for _, p := range it.parts {
		ps = append(ps, p.bytes)
	}
	return ps
}

// letGo releases what the writer popped, written or not: the buffers and
// the n bytes of stream data they held of the budget.
func (s *Session) letGo(it outItem, run []outItem, n int) {
	s.release(it)
	for i := range run {
		s.release(run[i])
		run[i] = outItem{}
	}
	s.out.give(n)
}

// release gives back the buffer an item's bytes lie in.
func (s *Session) release(it outItem) {
	it.lease.Release()
	for _, p := range it.parts {
		p.lease.Release()
	}
	if it.lent != nil {
		s.cfg.Batches.Put(it.lent)
	}
}
