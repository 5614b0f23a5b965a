package worker

import "github.com/dhtrelay/dht-relay/internal/routing"

// atLeastReader reads into p once least bytes are readable, or fewer once
// no more will come (udx.Stream).
type atLeastReader interface {
	ReadAtLeast(p []byte, least int) (int, error)
}

// messageEnds follows where the SecretStream messages end in a
// non-custodial stream's bytes, which the worker passes on unopened: each
// message is its length in 3 bytes, little-endian, and then that many
// bytes. Any bytes are some such sequence, so it has no error to report.
type messageEnds struct {
	left int // the current message's bytes still to come
	head int // between messages, the bytes of the next one's length read
	size int // the length being read
}

// need is how many bytes more end the message under way or, between
// messages, complete the next one's length (which ends a message of none).
func (e *messageEnds) need() int {
	if e.left > 0 {
		return e.left
	}
	return 3 - e.head
}

// advance takes the stream's next bytes and reports whether a message
// ended in them.
func (e *messageEnds) advance(p []byte) bool {
	ended := false
	for len(p) > 0 {
		if e.left > 0 {
			k := min(e.left, len(p))
			e.left -= k
			p = p[k:]
			ended = ended || e.left == 0
			continue
		}
		e.size |= int(p[0]) << (8 * e.head)
		e.head++
		p = p[1:]
		if e.head == 3 {
			e.left, e.head, e.size = e.size, 0, 0
			ended = ended || e.left == 0
		}
	}
	return ended
}

// readRaw reads one frame of a non-custodial stream's bytes into p, with
// n bytes of credit taken: it waits until a message ends in them or n are
// read. A frame for whatever the peer's packets brought, as they came,
// was a frame of a few KiB for most reads, and on an edge's NATS
// connection short frames among full ones make the server halve its read
// buffer, regrow it and copy the frame that straddles it, a tenth of an
// echo's CPU spent collecting that garbage. A message is of no use to the
// client before its end, so waiting for it costs the client nothing;
// small messages end in the packet that brings them. When n bytes leave
// of the message under way no more than routing.MaxRawChunk allows past a
// chunk, those are taken too, with their credit if the gate has it at
// once, as the edge cuts a client's. It returns the bytes
// read and the credit it holds, n and what it took.
func (st *stream) readRaw(r atLeastReader, p []byte, n int) (int, int, error) {
	k := 0
	for k < n {
		want := min(st.ends.need(), n-k)
		m, err := r.ReadAtLeast(p[k:n], want)
		ended := st.ends.advance(p[k : k+m])
		k += m
		if ended || err != nil || m < want {
			return k, n, err
		}
	}
	rest := st.ends.left
	if rest == 0 || rest > routing.MaxRawChunk-routing.MaxChunk || n+rest > len(p) {
		return k, n, nil
	}
	if got, _ := st.gate.TryTake(rest, rest); got == 0 {
		return k, n, nil // a closed gate fails the next Take
	}
	m, err := r.ReadAtLeast(p[k:k+rest], rest)
	st.ends.advance(p[k : k+m])
	return k + m, n + rest, err
}
