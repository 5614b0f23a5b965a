package routing

import (
	"context"
	"errors"
	"sync"
)

// Flow control of stream data between an edge and a worker. Each way, a
// stream's sender may have at most Window bytes that its receiver has not
// yet passed on (to the client's socket on an edge, to the peer's UDX
// stream on a worker); the receiver grants credit back as it passes bytes
// on. So NATS never holds more than Window bytes per stream and direction,
// and a slow reader at either end slows the other end instead of growing a
// buffer.
const (
	// Window is the credit a stream starts with, each way. A stream at
	// 500 MB/s passes 512 KiB in a millisecond, about what a credit's
	// round trip through NATS takes on a busy machine: 1 MiB measured
	// 3-8% more throughput than 512 KiB (and fewer credit frames), as
	// 512 KiB did a sixth more than 256 KiB when streams ran at half
	// the rate.
	Window = 1 << 20
	// MaxChunk is the most stream data one frame carries: a frame and its
	// NATS headers fit in natsfeed's pooled buffers. Peers commonly write
	// 64 KiB at a time, which 32 KiB splits into two frames where 30 KiB
	// made three (relayed at about 8% less CPU per GB); 62 KiB frames
	// measured far slower through NATS.
	MaxChunk = 32 << 10
	// MaxRawChunk is the most of a non-custodial stream's bytes one frame
	// carries, either way: a chunk, and up to an eighth more when that
	// ends the message under way, so that a message a little over whole
	// chunks (a SecretStream message of a 64 KiB write is 20 bytes over
	// two) does not leave a frame of its last few bytes. Such a frame
	// still fits natsfeed's pooled buffers.
	MaxRawChunk = MaxChunk + MaxChunk/8
	// grantAt is how much a receiver passes on before it grants credit:
	// fewer credit frames, at the price of a quarter window of latency.
	grantAt = Window / 4
)

// ErrOverrun means a peer sent more stream data than its credit allowed.
var ErrOverrun = errors.New("routing: stream data beyond credit")

// Gate is a sender's credit for one stream.
type Gate struct {
	mu    sync.Mutex
	avail int
	err   error
	wake  chan struct{} // capacity 1: a waiting Take's signal
}

// NewGate returns a gate holding a full Window.
func NewGate() *Gate { return &Gate{avail: Window, wake: make(chan struct{}, 1)} }

// Take waits until there are at least least bytes of credit and takes up
// to most bytes of it. Waiting for more than a byte keeps a sender that
// could fill frames from sending the sliver of credit a grant left (a
// frame of a few KiB costs the link what a full one does); least must be
// at most Window - grantAt, which the receiver always grants back.
func (g *Gate) Take(ctx context.Context, least, most int) (int, error) {
	for {
		if n, err := g.TryTake(least, most); n > 0 || err != nil {
			return n, err
		}
		select {
		case <-g.wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// TryTake takes up to most bytes of credit without waiting, when there
// are at least least: 0 when there are not, and the gate's error once it
// is closed.
func (g *Gate) TryTake(least, most int) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	if g.avail < max(least, 1) {
		return 0, nil
	}
	n := min(g.avail, most)
	g.avail -= n
	return n, nil
}

// Return gives back credit taken but not used.
func (g *Gate) Return(n int) { g.Grant(uint64(n)) }

// Grant adds credit the receiver granted.
func (g *Gate) Grant(n uint64) {
	g.mu.Lock()
	g.avail = int(min(uint64(g.avail)+n, Window))
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Close fails every Take, now and later, with err.
func (g *Gate) Close(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Ledger is a receiver's account of one stream's data; its owner
// serialises calls.
type Ledger struct {
	held     int // received, not yet passed on
	consumed int // passed on since the last grant
}

// Receive records n bytes arriving; it fails when the sender exceeded its
// credit.
func (l *Ledger) Receive(n int) error {
	l.held += n
	if l.held > Window {
		return ErrOverrun
	}
	return nil
}

// Consume records n bytes passed on and returns the credit to grant now,
// zero while too little has been passed on to be worth a frame.
func (l *Ledger) Consume(n int) uint64 {
	l.held -= n
	l.consumed += n
	if l.consumed < grantAt {
		return 0
	}
	g := l.consumed
	l.consumed = 0
	return uint64(g)
}

// Held is the bytes received and not yet passed on.
func (l *Ledger) Held() int { return l.held }
