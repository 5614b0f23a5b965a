// Package bytequeue keeps a stream's received bytes until they are read, in
// fixed blocks lent by a pool its streams share: bytes are copied in once
// as they arrive and once out as they are read, nothing is moved in
// between, and a queue holds blocks only while it has unread bytes.
package bytequeue

import "sync"

// BlockSize is the size of the blocks queued bytes are kept in.
const BlockSize = 64 << 10

// Pool lends blocks to the queues that share it; the zero Pool is ready.
// It keeps up to keepBlocks of the blocks given back, and the rest in a
// sync.Pool. A sync.Pool alone is emptied by every other collection, and
// a relay streaming with a small heap collects tens of times a second:
// most blocks of a download were made anew, a fifth of all the relay
// allocated.
type Pool struct {
	mu       sync.Mutex
	free     []*[BlockSize]byte
	overflow sync.Pool
}

// keepBlocks bounds the blocks a Pool keeps through collections: 4 MiB,
// a stream's receive window.
const keepBlocks = 64

func (bp *Pool) get() []byte {
	bp.mu.Lock()
	if n := len(bp.free); n > 0 {
		b := bp.free[n-1]
		bp.free[n-1] = nil
		bp.free = bp.free[:n-1]
		bp.mu.Unlock()
		return b[:0]
	}
	bp.mu.Unlock()
	if b, ok := bp.overflow.Get().(*[BlockSize]byte); ok {
		return b[:0]
	}
	return new([BlockSize]byte)[:0]
}

func (bp *Pool) put(b []byte) {
	block := (*[BlockSize]byte)(b[:BlockSize])
	bp.mu.Lock()
	if len(bp.free) < keepBlocks {
		bp.free = append(bp.free, block)
		bp.mu.Unlock()
		return
	}
	bp.mu.Unlock()
	bp.overflow.Put(block)
}

// Queue is bytes not yet read; the zero Queue is empty. It is not safe
// for concurrent use.
type Queue struct {
	blocks [][]byte // each filled up to its length
	off    int      // bytes of blocks[0] already read
	size   int      // bytes left to read
}

// Empty reports whether nothing is left to read.
func (q *Queue) Empty() bool { return len(q.blocks) == 0 }

// Len is how many bytes are left to read.
func (q *Queue) Len() int { return q.size }

// Push copies p in after what is queued.
func (q *Queue) Push(bp *Pool, p []byte) {
	q.size += len(p)
	for len(p) > 0 {
		n := len(q.blocks)
		if n == 0 || len(q.blocks[n-1]) == BlockSize {
			q.blocks = append(q.blocks, bp.get())
			n++
		}
		last := q.blocks[n-1]
		k := min(len(p), BlockSize-len(last))
		q.blocks[n-1] = append(last, p[:k]...)
		p = p[k:]
	}
}

// Read copies queued bytes into dst, returns how many, and gives each
// block it emptied back to the pool.
func (q *Queue) Read(bp *Pool, dst []byte) int {
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
	q.size -= n
	return n
}

// Release drops what is queued, giving its blocks back to bp.
func (q *Queue) Release(bp *Pool) {
	for i, b := range q.blocks {
		bp.put(b)
		q.blocks[i] = nil
	}
	q.blocks, q.off, q.size = q.blocks[:0], 0, 0
}
