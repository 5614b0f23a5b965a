package udx

import "sync"

// recvBlock is the size of the blocks a stream's unread bytes are kept in.
const recvBlock = 64 << 10

// blockPool lends recvQueue blocks; one per UDX instance, shared by its
// streams, so that a stream holds blocks only while it has unread bytes.
type blockPool struct{ p sync.Pool }

func (bp *blockPool) get() []byte {
	if b, ok := bp.p.Get().(*[recvBlock]byte); ok {
		return b[:0]
	}
	return new([recvBlock]byte)[:0]
}

func (bp *blockPool) put(b []byte) { bp.p.Put((*[recvBlock]byte)(b[:recvBlock])) }

// recvQueue is a stream's in-order bytes not yet read, in blocks: bytes
// are copied in once as they arrive and once out as they are read, with
// no packet kept and nothing moved in between.
type recvQueue struct {
	blocks [][]byte // each filled up to its length
	off    int      // bytes of blocks[0] already read
}

func (q *recvQueue) empty() bool { return len(q.blocks) == 0 }

func (q *recvQueue) push(bp *blockPool, p []byte) {
	for len(p) > 0 {
		n := len(q.blocks)
		if n == 0 || len(q.blocks[n-1]) == recvBlock {
			q.blocks = append(q.blocks, bp.get())
			n++
		}
		last := q.blocks[n-1]
		k := min(len(p), recvBlock-len(last))
		q.blocks[n-1] = append(last, p[:k]...)
		p = p[k:]
	}
}

// read copies unread bytes into dst and returns each block it emptied to
// the pool.
func (q *recvQueue) read(bp *blockPool, dst []byte) int {
	n := 0
	for n < len(dst) && len(q.blocks) > 0 {
		b := q.blocks[0]
		c := copy(dst[n:], b[q.off:])
		n += c
		q.off += c
		if q.off < len(b) {
			break
		}
		q.blocks[0] = nil
		q.blocks = q.blocks[1:]
		q.off = 0
		bp.put(b)
	}
	return n
}
