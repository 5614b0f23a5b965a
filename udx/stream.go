package udx

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtrelay/dht-relay/bytequeue"
)

// Sizes and timers. Memory per stream is bounded by SendBufferSize of
// written-but-unacked data plus RecvBufferSize (and one packet) of
// received-but-unread data.
const (
	// BaseMTU is the path MTU every stream starts with, as in libudx.
	BaseMTU = 1200
	// ipv4Overhead is the IPv4 and UDP header bytes an MTU includes.
	ipv4Overhead = 28
	// MaxMTU is the largest path MTU probing tries.
	MaxMTU = 1500
	// mtuProbeStep is how much larger each probe is, and mtuProbeAttempts
	// how many lost probes at one size end probing, as in libudx.
	mtuProbeStep     = 32
	mtuProbeAttempts = 3
	// ipv6Overhead is the IPv6 and UDP header bytes an MTU includes.
	ipv6Overhead = 48
	// MaxPayload is the data one packet carries at BaseMTU over IPv4.
	MaxPayload = BaseMTU - ipv4Overhead - HeaderSize
	// SendBufferSize bounds bytes written and not yet acked; Write blocks
	// beyond it.
	SendBufferSize = 4 << 20
	// maxUnsent bounds bytes written and never sent; Write blocks beyond
	// it too. Behind a receiver slower than the writer (a JS peer on an
	// upload) the send buffer fills, and a byte queued at its far end
	// waited 35 ms at 120 MB/s: out of the processor's caches by the
	// time the kernel copied it and its ack came. Queued at most this far
	// ahead of the window, an upload to a JS peer spent a third less on
	// the kernel's copy and half as much in the sender's walks over its
	// packets. It does not bound the packets in flight, which may still
	// fill the send buffer.
	maxUnsent = 256 << 10
	// RecvBufferSize bounds bytes received and not yet read, give or take
	// the last packet taken; it is the largest window a stream advertises,
	// as libudx's 4 MiB.
	RecvBufferSize = 4 << 20
	// recvRing is the most packets a receiver holds, in or out of order.
	recvRing      = 1 << 13
	initialWindow = 10 * MaxPayload
	minRTO        = 200 * time.Millisecond
	maxRTO        = 30 * time.Second
	initialRTO    = time.Second
	// maxRetries is how many consecutive retransmission timeouts end a
	// stream with ErrTimeout.
	maxRetries = 8
	// lingerTime keeps a finished stream's id live so late retransmissions
	// of its END still get an ack.
	lingerTime = 2 * time.Second
)

var (
	// ErrReset means the remote destroyed the stream.
	ErrReset = errors.New("udx: stream destroyed by remote")
	// ErrTimeout means the remote stopped acking.
	ErrTimeout = errors.New("udx: stream timed out")
	// ErrNotConnected means an operation needs a connected stream.
	ErrNotConnected = errors.New("udx: stream not connected")
)

// maxPayloadCap is the most payload any packet carries (a MaxMTU IPv4
// path).
const maxPayloadCap = MaxMTU - ipv4Overhead - HeaderSize

// outPackets recycles send-side packets, which hold their payload inline.
// A sending stream keeps spares of its own (see Stream.spare).
var outPackets = sync.Pool{New: func() any { return new(outPacket) }}

// maxOut bounds the packets a stream holds, queued or spare: a full send
// buffer's at the base MTU. A writer fills the buffer in one turn (a Write
// queues while there is room) and acks free it a packet at a time on the
// socket's reader, so spares as many as the queue held are what lets the
// writer's next turn take none from the pool; the pool costs a stream in
// flight one of its slowest steps a packet (taken on one processor, given
// back on the other, and emptied by each collection, so each cycle
// allocates again).
const maxOut = SendBufferSize/MaxPayload + 1

// keepSpare is the fewest spare packets a stream that has sent all it was
// given keeps until its timer next fires (an RTO, then they go back): a
// stream in a bulk transfer runs dry between its writer's turns, and a
// stream that sends a packet now and then needs none kept.
const keepSpare = 16

// outPacket is a packet to send, its payload inline. Its state comes
// first and together, so that an ack walking many packets touches one or
// two cache lines of each, and so that a recycled packet is reset without
// clearing its payload buffer.
type outPacket struct {
	outState
	buf [maxPayloadCap]byte
}

type outState struct {
	seq      uint32
	flags    byte
	data     []byte // aliases buf
	sentAt   time.Time
	tx       int
	sacked   bool
	lost     bool
	inflight bool
	probe    bool // its first transmission is padded to probe a larger MTU

	delivered   int64 // the rate estimator's state when it was sent
	deliveredAt time.Time
}

func (p *outPacket) size() int { return len(p.data) }

type inPacket struct {
	seq   uint32
	flags byte
	data  []byte
}

// Stream is one reliable UDX stream. Read and Write may run concurrently,
// one goroutine each.
type Stream struct {
	u  *UDX
	id uint32

	mu        sync.Mutex
	socket    *Socket
	remoteID  uint32
	remote    netip.AddrPort
	firewall  func(*Socket, netip.AddrPort) bool
	onMessage func([]byte)
	relay     *Stream
	err       error
	wbuf      []byte // control packets; nil until the first is sent

	// send side
	seq         uint32 // next sequence number to assign
	sndNxt      uint32 // next sequence number never sent
	out         []*outPacket
	outHead     int
	queued      int // payload bytes in out
	unsent      int // payload bytes in out never sent
	inflight    int
	cwnd        int
	ssthresh    int
	recoveryEnd uint32
	inRecovery  bool
	sendRwnd    int
	retx        []uint32
	resent      []resend    // packets sent again, in the order sent, for detectLoss to judge
	lossFrom    uint32      // every first transmission before it is sacked, lost or sent again
	sackSeen    []sackRange // the last ack's ranges as walked, every packet in them sacked; nil out of recovery
	sackSpare   []sackRange // sackSeen's other buffer, for the next ack's
	rackSent    time.Time
	rate        rateEstimator
	srtt        time.Duration
	rttvar      time.Duration
	rto         time.Duration
	retries     int
	timer       *time.Timer
	timerArmed  bool
	rtoRestart  bool // an ack came since the timer was armed: the next arming restarts it
	timerIdle   bool // armed with nothing outstanding, to give the spare packets back
	endQueued   bool
	endAcked    bool
	mtu         int
	probing     bool // a probe is in flight
	probeFails  int
	mtuDone     bool
	writeCh     chan struct{}
	spare       []*outPacket // acked packets for the next writes, with out at most maxOut; given back an RTO after the stream goes idle

	// receive side
	ack         uint32
	ring        []*inPacket
	oooMax      uint32 // one past the highest seq held out of order
	buffered    int    // bytes held: readable plus out of order
	readable    bytequeue.Queue
	remoteEnded bool
	advertised  int
	readCh      chan struct{}
	want        int // the bytes the reader waits for: none wakes it before they are readable
	finished    bool
	ackPending  bool
	flushOwed   bool        // a read's packets let it send; the socket flushes it at the read's end
	readOwed    bool        // a read's packets brought data; its reader is woken at the read's end
	unwoken     int         // bytes delivered since the reader was last woken
	unacked     int         // in-order data packets received since an ack last went
	run         int         // data packets received since data last paused for ackDelay
	lastData    time.Time   // when data last came
	ackTimer    *time.Timer // sends a held-back ack after ackDelay

	txb txBatch
	oob []byte

	done      chan struct{} // closed when the stream fails or closes
	closeOnce sync.Once

	stats Stats
}

// Stats counts a stream's packets.
type Stats struct {
	PacketsSent     uint64
	Retransmits     uint64
	Timeouts        uint64
	PacketsReceived uint64
	Dropped         uint64 // received beyond the window or buffer
}

// Stats returns the stream's counters.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// NewStream creates a stream with local id. Packets for the id are routed
// to it from every socket of u.
func (u *UDX) NewStream(id uint32) (*Stream, error) {
	s := &Stream{
		u:        u,
		id:       id,
		cwnd:     initialWindow,
		ssthresh: 1 << 30,
		sendRwnd: RecvBufferSize,
		rto:      initialRTO,
		mtu:      BaseMTU,
		writeCh:  make(chan struct{}, 1),
		readCh:   make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.streams[id]; ok {
		return nil, fmt.Errorf("%w: %d", ErrIDInUse, id)
	}
	u.streams[id] = s
	return s, nil
}

// Done is closed once the stream has failed or closed.
func (s *Stream) Done() <-chan struct{} { return s.done }

// ID is the local stream id.
func (s *Stream) ID() uint32 { return s.id }

// RemoteID is the remote stream id, once connected.
func (s *Stream) RemoteID() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remoteID
}

// RemoteAddr is the remote address, once connected.
func (s *Stream) RemoteAddr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote
}

// AckVia sends a bare ack of the stream's state from socket to addr, for
// the remote stream remoteID, without moving the stream there. A stream
// that moved to a direct path binds a relay's stream this way (a relay
// learns where its peer is from the peer's first packet), so that what
// the far peer sent over the relay before moving still arrives.
func (s *Stream) AckVia(socket *Socket, remoteID uint32, addr netip.AddrPort) error {
	s.mu.Lock()
	h := header{id: remoteID, rwnd: uint32(s.window()), seq: s.seq, ack: s.ack}
	s.mu.Unlock()
	var b [HeaderSize]byte
	h.put(b[:])
	return socket.write(b[:], addr)
}

// Socket is the socket the stream is connected on, nil before.
func (s *Stream) Socket() *Socket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.socket
}

// Connect binds the stream to socket and the remote stream remoteID at
// addr. Data written before Connect is sent once connected.
func (s *Stream) Connect(socket *Socket, remoteID uint32, addr netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	first := s.socket == nil
	s.socket, s.remoteID, s.remote = socket, remoteID, addr
	if first && s.ring != nil {
		// Data taken in before the stream was connected gets its ack now.
		s.sendAck()
	}
	s.flush()
	return nil
}

// ChangeRemote moves the stream to another socket, remote id or address,
// as libudx's change_remote does; unacked data is resent to the new remote.
func (s *Stream) ChangeRemote(socket *Socket, remoteID uint32, addr netip.AddrPort) error {
	return s.Connect(socket, remoteID, addr)
}

// SetFirewall sets the hook that runs when a packet reaches the stream on
// a socket it is not connected to. It accepts by returning true, normally
// after connecting the stream to that socket and address; an accepted
// packet is taken in even if the stream stays connected elsewhere.
// Rejected packets are dropped.
func (s *Stream) SetFirewall(fn func(socket *Socket, from netip.AddrPort) bool) {
	s.mu.Lock()
	s.firewall = fn
	s.mu.Unlock()
}

// SetMessageHandler sets the receiver of MESSAGE datagrams; p is valid
// only during the call.
func (s *Stream) SetMessageHandler(fn func(p []byte)) {
	s.mu.Lock()
	s.onMessage = fn
	s.mu.Unlock()
}

// RelayTo forwards every packet this stream receives to dst's remote,
// rewritten to dst's remote id, as libudx's relay_to does.
func (s *Stream) RelayTo(dst *Stream) {
	s.mu.Lock()
	s.relay = dst
	s.mu.Unlock()
}

func (s *Stream) socketIs(sock *Socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.socket == sock
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Write queues p for reliable delivery, blocking while SendBufferSize bytes
// are unacked or maxUnsent bytes wait to be sent.
func (s *Stream) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			return written, s.err
		}
		if s.endQueued {
			s.mu.Unlock()
			return written, fmt.Errorf("udx: write after end: %w", net.ErrClosed)
		}
		// A packet is cut where the write ends or the MTU does, never
		// where the buffer's room does: the writer waits for room for a
		// whole one. A cut there was a packet and an ack more each time
		// a blocked writer woke, and one that left a packet of one or two
		// bytes at the start of a SecretStream frame turned a JS peer's
		// framed reads off for the stream's life (docs/datapath.md, the
		// UDX step).
		space := min(SendBufferSize-s.queued, maxUnsent-s.unsent)
		if space < min(len(p), s.payloadSize()) {
			s.mu.Unlock()
			select {
			case <-s.writeCh:
			case <-s.done:
			}
			continue
		}
		for len(p) > 0 && space >= min(len(p), s.payloadSize()) {
			n := min(len(p), s.payloadSize())
			s.enqueue(FlagData, p[:n])
			p, space, written = p[n:], space-n, written+n
		}
		s.flush()
		// The flush's notice of room is for a writer that waits, not
		// this one, which looks at the room again before it waits.
		select {
		case <-s.writeCh:
		default:
		}
		s.mu.Unlock()
	}
	return written, nil
}

// CloseWrite sends END after everything written.
func (s *Stream) CloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if !s.endQueued {
		s.endQueued = true
		s.enqueue(FlagEnd, nil)
		s.flush()
	}
	return nil
}

func (s *Stream) enqueue(flags byte, data []byte) {
	var p *outPacket
	if n := len(s.spare); n > 0 {
		p, s.spare[n-1] = s.spare[n-1], nil
		s.spare = s.spare[:n-1]
	} else {
		p = outPackets.Get().(*outPacket)
	}
	p.outState = outState{seq: s.seq, flags: flags}
	p.data = p.buf[:copy(p.buf[:], data)]
	s.out = append(s.out, p)
	s.seq++
	s.queued += len(data)
	s.unsent += len(data)
}

// Read reads received data in order; io.EOF follows the remote's END.
func (s *Stream) Read(p []byte) (int, error) { return s.read(p, 1) }

// ReadAtLeast reads into p, as Read does, once least bytes are readable
// (at most len(p), and at most maxReadWait so the window stays open), or
// fewer once no more will come: a reader that can do nothing with fewer
// (a relay that passes a peer's messages on whole) is woken once for them.
func (s *Stream) ReadAtLeast(p []byte, least int) (int, error) {
	return s.read(p, max(min(least, len(p), maxReadWait), 1))
}

// ReadFull fills p with received data in order, as io.ReadFull would, but
// its reader is woken once the bytes it waits for are all here, not at
// each read's packets: a reader that can do nothing with part of a
// message (a SecretStream message's body, to open it) is spared a wake,
// and at more than one processor a switch between threads, for each
// part. A JS peer's 32 KiB message comes in two to four reads. Custodial
// downloads from a JS peer, alternated with the reader woken at each
// read, at two processors: 3.66 against 4.04 s of CPU per GB, half the
// futex calls; at one, 2.94 against 2.99. It waits for at most
// maxReadWait bytes at a time, so the window stays open to the sender
// while it waits.
func (s *Stream) ReadFull(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := s.read(p[n:], min(len(p)-n, maxReadWait))
		n += k
		if err != nil {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// maxReadWait bounds the bytes a reader waits for before it is woken: a
// quarter of RecvBufferSize, so that the window the stream advertises
// meanwhile never falls below three quarters of it.
const maxReadWait = RecvBufferSize / 4

// read reads into p once want bytes are readable, or fewer once no more
// will come.
func (s *Stream) read(p []byte, want int) (int, error) {
	for {
		s.mu.Lock()
		if s.readable.Len() >= want || !s.readable.Empty() && (s.remoteEnded || s.err != nil) {
			n := s.readable.Read(&s.u.blocks, p)
			s.buffered -= n
			// Tell a sender we stalled that the window opened again.
			if s.advertised < RecvBufferSize/4 && s.window() >= RecvBufferSize/2 {
				s.sendAck()
			}
			s.mu.Unlock()
			return n, nil
		}
		if s.remoteEnded { // with nothing readable, as the branch above took any
			s.mu.Unlock()
			return 0, io.EOF
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		s.want = want
		s.mu.Unlock()
		select {
		case <-s.readCh:
		case <-s.done:
		}
	}
}

// Send sends p as one unreliable MESSAGE datagram on the stream.
func (s *Stream) Send(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.socket == nil {
		return ErrNotConnected
	}
	return s.writePacket(FlagMessage, s.seq, p)
}

// Close destroys the stream with net.ErrClosed.
func (s *Stream) Close() error {
	s.Destroy(net.ErrClosed)
	return nil
}

// Destroy ends the stream: unless it finished both ways, the remote is sent
// DESTROY (it sees ErrReset). Blocked and later reads and writes return err.
func (s *Stream) Destroy(err error) {
	s.mu.Lock()
	// A relaying stream is no endpoint: the stream its remote names is the
	// far peer's, which a reset from here would end.
	if s.err == nil && !s.finished && s.socket != nil && s.relay == nil {
		s.writePacket(FlagDestroy, s.seq, nil)
	}
	s.mu.Unlock()
	s.fail(err)
	// Nothing reads what was received and not read once the stream is
	// destroyed here, as a destroyed JS stream drops it: its blocks (up
	// to RecvBufferSize) go back now, not once the last reference to the
	// stream is gone, which a relay's teardown can hold for a while. A
	// stream that failed otherwise (a reset from the remote, a timeout)
	// keeps it for its reader: the peer's last bytes before its DESTROY.
	s.mu.Lock()
	s.readable.Release(&s.u.blocks)
	clear(s.ring)
	s.buffered = 0
	s.mu.Unlock()
}

// fail ends the stream with err and releases its id.
func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.ackTimer != nil {
			s.ackTimer.Stop()
		}
		// The packets written and not acked (up to SendBufferSize) go
		// back at once: nothing sends them again.
		for _, p := range s.out[s.outHead:] {
			outPackets.Put(p)
		}
		s.releaseSpare()
		clear(s.out)
		s.out, s.outHead, s.retx, s.resent = s.out[:0], 0, nil, nil
		s.sackSeen, s.sackSpare = nil, nil
		s.queued, s.unsent, s.inflight = 0, 0, 0
	}
	s.mu.Unlock()
	s.u.release(s)
	s.closeOnce.Do(func() { close(s.done) })
}

// recycle keeps acked packet p for the stream's next write, or gives it
// back to the pool once the stream holds maxOut. mu is held.
func (s *Stream) recycle(p *outPacket) {
	if len(s.spare)+len(s.out)-s.outHead < maxOut {
		s.spare = append(s.spare, p)
		return
	}
	outPackets.Put(p)
}

// releaseSpare gives the stream's spare packets back to the pool, and
// the list too (a bulk sender's holds thousands): a stream with nothing
// queued may stay idle for long. mu is held.
func (s *Stream) releaseSpare() {
	for _, p := range s.spare {
		outPackets.Put(p)
	}
	s.spare = nil
}

// payloadSize is the data a packet carries at the current MTU.
func (s *Stream) payloadSize() int {
	overhead := ipv4Overhead
	if s.remote.Addr().Is6() {
		overhead = ipv6Overhead
	}
	return min(s.mtu-overhead-HeaderSize, maxPayloadCap)
}

// MTU is the path MTU the stream has established.
func (s *Stream) MTU() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mtu
}

// window is the receive window to advertise.
func (s *Stream) window() int { return max(RecvBufferSize-s.buffered, 0) }

// stateHeader is the header of a packet to the remote carrying the
// stream's state, its window and its ack, as every packet does: the
// window it gives is the one advertised, and it answers the data received
// so far, so no held-back ack is owed. mu is held.
func (s *Stream) stateHeader(flags byte, seq uint32) header {
	h := header{flags: flags, id: s.remoteID, rwnd: uint32(s.window()), seq: seq, ack: s.ack}
	s.advertised = int(h.rwnd)
	s.unacked = 0
	return h
}

// writePacket sends one packet built from the current state; mu is held.
func (s *Stream) writePacket(flags byte, seq uint32, payload []byte) error {
	if s.socket == nil {
		return ErrNotConnected
	}
	h := s.stateHeader(flags, seq)
	if s.wbuf == nil {
		// Allocated on first use: an idle stream carries no write buffer.
		s.wbuf = make([]byte, 0, MaxMTU)
	}
	b := s.wbuf[:HeaderSize]
	h.put(b)
	b = append(b, payload...)
	s.wbuf = b[:0]
	return s.socket.write(b, s.remote)
}

// sendAck sends a state packet with the cumulative ack and, when data is
// held out of order, up to MaxSACKRanges selective-ack ranges.
func (s *Stream) sendAck() {
	var sack []byte
	if seqLess(s.ack, s.oooMax) {
		var start uint32
		in := false
		for q := s.ack + 1; seqLess(q, s.oooMax) || q == s.oooMax; q++ {
			held := q != s.oooMax && s.ring[q%recvRing] != nil && s.ring[q%recvRing].seq == q
			if held && !in {
				start, in = q, true
			} else if !held && in {
				sack = appendRange(sack, start, q)
				in = false
				if len(sack) == MaxSACKRanges*8 {
					break
				}
			}
		}
	}
	flags := byte(0)
	if len(sack) > 0 {
		flags = FlagSACK
	}
	s.u.count.acksSent.Add(1)
	s.writePacket(flags, s.seq, sack)
}

func appendRange(b []byte, start, end uint32) []byte {
	return append(b, byte(start), byte(start>>8), byte(start>>16), byte(start>>24),
		byte(end), byte(end>>8), byte(end>>16), byte(end>>24))
}
