package natsfeed

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// ErrProtocol means the server sent something the client protocol does not
// allow.
var ErrProtocol = errors.New("natsfeed: protocol error")

const (
	// bufSize is the size of the pooled payload buffers, which also hold
	// the CRLF that ends a payload: room for 32 KiB of stream data and
	// its headers, in what the allocator hands out for anything above
	// 32 KiB anyway (whole 8 KiB pages).
	bufSize = 40 << 10
	// MaxPooled is the largest payload, headers included, lent in a
	// pooled buffer.
	MaxPooled = bufSize - 2
	// minPooled is the smallest payload read into a pooled buffer. Smaller
	// ones are control messages that a handler may keep for a session's
	// life; a pooled buffer would hold bufSize for each.
	minPooled = 4 << 10
	// maxPayload bounds a message whatever the server announces: the
	// NATS server's own largest max_payload.
	maxPayload = 64 << 20
	// maxLine bounds a protocol line (an INFO can list many servers).
	maxLine = 64 << 10
	// fillSize caps each read into the line buffer: enough for a run of
	// control messages, while a large payload's bytes come mostly past
	// the buffer, copied once.
	fillSize = 4 << 10
)

// op is a server protocol operation.
type op int

const (
	opMsg op = iota
	opPing
	opPong
	opOK
	opErr
	opInfo
)

// Lease is a pooled buffer lent with a message; the zero Lease lends
// nothing. A Lease may be copied freely: of all the copies, the first
// Release gives the buffer back and the others do nothing, even once the
// buffer is lent again for another message, because each lending has a
// generation of its own and a Release names the one it holds.
type Lease struct {
	buf *pooled
	gen uint64
}

// pooled is a payload buffer and the generation of its current lending.
type pooled struct {
	b    []byte
	gen  atomic.Uint64
	pool *sync.Pool
}

// newPool returns a pool of payload buffers to lend.
func newPool() *sync.Pool {
	pool := &sync.Pool{}
	pool.New = func() any { return &pooled{b: make([]byte, bufSize), pool: pool} }
	return pool
}

// lend takes a buffer from pool (of *pooled) and lends it.
func lend(pool *sync.Pool) (Lease, []byte) {
	p := pool.Get().(*pooled)
	return Lease{buf: p, gen: p.gen.Load()}, p.b
}

// Release gives the buffer back, if this lending still holds it. The
// message's Data must not be used after. It reports whether it did: false
// for the zero Lease and for a lending already given back.
func (l Lease) Release() bool {
	if l.buf == nil || !l.buf.gen.CompareAndSwap(l.gen, l.gen+1) {
		return false
	}
	l.buf.pool.Put(l.buf)
	return true
}

// Msg is one message received.
type Msg struct {
	// Subject is valid only while the handler runs.
	Subject []byte
	Header  nats.Header
	// Data is the payload, in Lease's buffer when it has one.
	Data  []byte
	Lease Lease
}

// reader reads the server's side of the client protocol.
type reader struct {
	src     io.Reader // what br reads from
	br      *bufio.Reader
	pool    *sync.Pool // *pooled of bufSize
	subject []byte     // the last message's subject
}

func newReader(r io.Reader, pool *sync.Pool) *reader {
	return &reader{src: r, br: bufio.NewReaderSize(cappedReader{r}, maxLine), pool: pool}
}

// cappedReader reads at most fillSize bytes at a time.
type cappedReader struct{ r io.Reader }

func (c cappedReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), fillSize)]) }

// next reads one operation: a message, or a control operation with its
// argument (the INFO's JSON, the -ERR's text).
func (r *reader) next() (op, Msg, []byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return 0, Msg{}, nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLine)
	}
	if err != nil {
		return 0, Msg{}, nil, err
	}
	line = bytes.TrimRight(line, "\r\n")
	name, arg, _ := bytes.Cut(line, []byte{' '})
	switch {
	case bytes.EqualFold(name, []byte("MSG")):
		m, err := r.message(arg, false)
		return opMsg, m, nil, err
	case bytes.EqualFold(name, []byte("HMSG")):
		m, err := r.message(arg, true)
		return opMsg, m, nil, err
	case bytes.EqualFold(name, []byte("PING")):
		return opPing, Msg{}, nil, nil
	case bytes.EqualFold(name, []byte("PONG")):
		return opPong, Msg{}, nil, nil
	case bytes.EqualFold(name, []byte("+OK")):
		return opOK, Msg{}, nil, nil
	case bytes.EqualFold(name, []byte("-ERR")):
		return opErr, Msg{}, bytes.Trim(arg, " '"), nil
	case bytes.EqualFold(name, []byte("INFO")):
		return opInfo, Msg{}, arg, nil
	}
	return 0, Msg{}, nil, fmt.Errorf("%w: unknown operation %.32q", ErrProtocol, name)
}

// message reads a MSG's or HMSG's payload after its line's arguments:
// subject, sid, an optional reply subject, for HMSG the header size, and
// the total size.
func (r *reader) message(arg []byte, headers bool) (Msg, error) {
	var fields [6][]byte
	f := split(arg, fields[:0])
	want := 3
	if headers {
		want = 4
	}
	if len(f) != want && len(f) != want+1 {
		return Msg{}, fmt.Errorf("%w: message line %.64q", ErrProtocol, arg)
	}
	total, err := size(f[len(f)-1])
	if err != nil {
		return Msg{}, err
	}
	hdr := 0
	if headers {
		if hdr, err = size(f[len(f)-2]); err != nil {
			return Msg{}, err
		}
		if hdr > total {
			return Msg{}, fmt.Errorf("%w: header of %d bytes in a message of %d", ErrProtocol, hdr, total)
		}
	}
	// The subject lives in the line buffer, which the payload's read may
	// overwrite.
	r.subject = append(r.subject[:0], f[0]...)
	m := Msg{Subject: r.subject}
	var buf []byte
	if total >= minPooled && total <= MaxPooled {
		var b []byte
		m.Lease, b = lend(r.pool)
		buf = b[:total+2]
	} else {
		buf = make([]byte, total+2)
	}
	// What the line buffer already holds of the payload is copied out;
	// the rest is read from the connection straight into buf, not through
	// the line buffer and a second copy.
	k, _ := r.br.Read(buf[:min(r.br.Buffered(), len(buf))])
	if _, err := io.ReadFull(r.src, buf[k:]); err != nil {
		m.Lease.Release()
		return Msg{}, err
	}
	if buf[total] != '\r' || buf[total+1] != '\n' {
		m.Lease.Release()
		return Msg{}, fmt.Errorf("%w: payload not followed by CRLF", ErrProtocol)
	}
	if hdr > 0 {
		h, err := nats.DecodeHeadersMsg(buf[:hdr])
		if err != nil {
			m.Lease.Release()
			return Msg{}, fmt.Errorf("%w: headers: %v", ErrProtocol, err)
		}
		m.Header = h
	}
	m.Data = buf[hdr:total]
	return m, nil
}

// split appends arg's space-separated fields to f, at most cap(f) of them
// and one more to show there were too many.
func split(arg []byte, f [][]byte) [][]byte {
	for len(f) < cap(f) {
		arg = bytes.TrimLeft(arg, " \t")
		if len(arg) == 0 {
			break
		}
		i := bytes.IndexAny(arg, " \t")
		if i < 0 {
			i = len(arg)
		}
		f, arg = append(f, arg[:i]), arg[i:]
	}
	return f
}

func size(b []byte) (int, error) {
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 || n > maxPayload {
		return 0, fmt.Errorf("%w: size %.20q", ErrProtocol, b)
	}
	return n, nil
}
