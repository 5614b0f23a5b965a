package session

import (
	"github.com/dhtrelay/dht-relay/internal/natsfeed"
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
	lease   natsfeed.Lease // stream data: payload's buffer, released once written
	// frame is, for stream data, the frame payload arrived in: its bytes
	// in front of payload are free for the message's header.
	frame []byte
}

// outQueue is what waits to be written to the client, under Session.mu:
// urgent messages first, the rest in order. Stream data is bounded by
// credit; everything else by the control limit.
type outQueue struct {
	urgent  []outItem
	fifo    []outItem
	control int // non-data items queued
	closing bool
	writing bool // a writer goroutine is running
	start   func()
}

// signal makes sure a writer runs: an idle session has no writer
// goroutine, one starts when there is something to write.
func (q *outQueue) signal() {
	if !q.writing {
		q.writing = true
		go q.start()
	}
}

// push queues it; false when the control limit is exceeded.
func (q *outQueue) push(it outItem, limit int) bool {
	if it.data == nil {
		if q.control >= limit {
			return false
		}
		q.control++
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
	if len(q.urgent) == 0 && len(q.fifo) == 0 {
		q.urgent, q.fifo = nil, nil // an idle session holds no queue
	}
	return it, true
}

// writer writes queued messages to the client and grants credit for the
// stream data written, until the queue is empty; it is the only writer of
// stream messages, and runs only while there is something to write.
func (s *Session) writer() {
	for {
		s.mu.Lock()
		it, ok := s.out.pop()
		closing := s.out.closing
		if !ok {
			s.out.writing = false
		}
		s.mu.Unlock()
		if !ok {
			if closing {
				s.stop()
				s.cfg.Framed.Close()
			}
			return
		}
		if s.ctx.Err() != nil {
			s.mu.Lock()
			s.out.writing = false
			s.mu.Unlock()
			return
		}
		var err error
		if room := len(it.frame) - len(it.payload); room > 0 {
			err = s.ch.SendPayloadIn(it.typ, it.frame, room)
		} else {
			err = s.ch.SendPayload(it.typ, it.payload)
		}
		if err != nil {
			s.Fail(err)
			return
		}
		it.lease.Release()
		if it.data != nil {
			s.mu.Lock()
			grant := it.data.ledger.Consume(it.n)
			worker := it.data.worker
			s.mu.Unlock()
			if grant > 0 {
				s.link.Send(routing.KindCredit, routing.AppendCredit(nil, routing.Credit{Alias: worker, Bytes: grant}))
			}
		}
	}
}
