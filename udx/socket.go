// Package udx implements UDX, the reliable, congestion-controlled stream
// transport over UDP that Hyperswarm uses, wire-compatible with libudx as
// shipped in udx-native.
//
// A packet is a 20-byte header (magic ff, version 01, flags, data offset,
// the receiver's stream id, the sender's receive window, sequence number
// and cumulative ack, all little-endian) and a payload. DATA and END
// packets take a sequence number and are retransmitted until acked; acks
// carry selective-ack ranges when data arrived out of order; MESSAGE
// packets are unreliable datagrams on a stream; DESTROY aborts a stream;
// HEARTBEAT asks for an ack. Streams share a UDP socket with other
// protocols: a datagram that is not a packet for a live stream goes to the
// socket's raw handler, which is how dht-rpc shares the socket.
package udx

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dhtrelay/dht-relay/bytequeue"
)

// Stream ids are chosen by the caller; a UDX instance holds the ids of its
// live streams across all its sockets, as a libudx instance does.
type UDX struct {
	mu      sync.Mutex
	streams map[uint32]*Stream
	enter   func(func() error) error
	blocks  bytequeue.Pool
	slots   slotBudget
	count   counters
}

// counters are what an instance's sockets and streams did, for Counts.
type counters struct {
	sendCalls, recvCalls                  atomic.Uint64
	dataSent, retransmits, dataReceived   atomic.Uint64
	acksReceived, acksSent, bytesReceived atomic.Uint64
}

// Counts is what an instance's sockets and streams have done: where the
// cost of moving bytes goes (system calls per packet, retransmissions,
// acks per data packet).
type Counts struct {
	SendCalls     uint64 // sendmsg calls (one may carry many packets with GSO)
	RecvCalls     uint64 // receive calls, recvmsg or recvmmsg, those that found nothing waiting too (one may bring many packets)
	DataSent      uint64 // data packets sent, first sends and retransmissions
	Retransmits   uint64
	DataReceived  uint64 // data packets received, in order or not
	AcksReceived  uint64 // packets received that carried no data
	AcksSent      uint64 // packets sent that carried no data
	BytesReceived uint64 // datagram bytes read
	// SlotsHeld is the read slots the instance's sockets hold now beyond
	// their first (a gauge, at most 128); SlotsRefused the times a busy
	// socket wanted more than that bound left, and read fewer datagrams
	// a call than it could have.
	SlotsHeld, SlotsRefused uint64
}

// Counts returns the instance's counters since it was made.
func (u *UDX) Counts() Counts {
	c := &u.count
	held, refused := u.slots.counts()
	return Counts{
		SendCalls: c.sendCalls.Load(), RecvCalls: c.recvCalls.Load(),
		DataSent: c.dataSent.Load(), Retransmits: c.retransmits.Load(), DataReceived: c.dataReceived.Load(),
		AcksReceived: c.acksReceived.Load(), AcksSent: c.acksSent.Load(), BytesReceived: c.bytesReceived.Load(),
		SlotsHeld: held, SlotsRefused: refused,
	}
}

// New returns an empty UDX instance.
func New() *UDX { return NewIn(nil) }

// NewIn returns a UDX instance whose sockets are bound, and interfaces
// listed, inside fn given to enter (nil: where the caller is). A socket
// binds in the network namespace of the thread that creates it, and
// sockets are made on the fly (holepunching makes hundreds): a node in
// another namespace than its process enters that namespace here.
func NewIn(enter func(fn func() error) error) *UDX {
	if enter == nil {
		enter = func(fn func() error) error { return fn() }
	}
	return &UDX{streams: map[uint32]*Stream{}, enter: enter}
}

// Held is the bytes the instance's streams hold: received and not yet
// read, and written and not yet acked. It walks every stream.
func (u *UDX) Held() int64 {
	u.mu.Lock()
	streams := slices.Collect(maps.Values(u.streams))
	u.mu.Unlock()
	var n int64
	for _, s := range streams {
		s.mu.Lock()
		n += int64(s.buffered + s.queued)
		s.mu.Unlock()
	}
	return n
}

// InterfaceAddrs returns the host's IPv4 addresses other than loopback,
// where a peer on the same network may reach it.
func (u *UDX) InterfaceAddrs() ([]netip.Addr, error) {
	var out []netip.Addr
	err := u.enter(func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
				out = append(out, p.Addr())
			}
		}
		return nil
	})
	return out, err
}

// ErrIDInUse means a stream id is already live in this instance.
var ErrIDInUse = errors.New("udx: stream id in use")

// RandomID returns a random stream id not live in this instance.
func (u *UDX) RandomID() uint32 {
	for {
		var b [4]byte
		rand.Read(b[:])
		id := binary.LittleEndian.Uint32(b[:])
		u.mu.Lock()
		_, used := u.streams[id]
		u.mu.Unlock()
		if !used {
			return id
		}
	}
}

func (u *UDX) lookup(id uint32) *Stream {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.streams[id]
}

func (u *UDX) release(s *Stream) {
	u.mu.Lock()
	if u.streams[s.id] == s {
		delete(u.streams, s.id)
	}
	u.mu.Unlock()
}

// RawHandler receives datagrams that are not packets of a live stream. p is
// valid only during the call.
type RawHandler func(p []byte, from netip.AddrPort)

// Socket is a bound UDP socket carrying streams and raw datagrams.
type Socket struct {
	u     *UDX
	conn  *net.UDPConn
	raw   RawHandler
	local netip.AddrPort
	done  chan struct{}
	once  sync.Once
	gso   atomic.Bool
	gro   bool
	rs    *rawSender // nil where packets go through the net package

	// Touched only by the reader: the streams owing an ack, those owing
	// the sends a read's packets allowed, and when the read came.
	pendingAcks    []*Stream
	pendingFlushes []*Stream
	readAt         time.Time
}

// readBufferSize is the largest datagram a socket reads.
const readBufferSize = 64 << 10

// Listen binds a socket on addr (port 0 picks one) and starts its reader;
// raw receives every datagram that is not a packet of a live stream and may
// be nil.
func (u *UDX) Listen(addr netip.AddrPort, raw RawHandler) (*Socket, error) {
	var conn *net.UDPConn
	err := u.enter(func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("udx: listen %s: %w", addr, err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	s := &Socket{u: u, conn: conn, raw: raw, done: make(chan struct{})}
	s.local = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if rc, err := conn.SyscallConn(); err == nil {
		gso, gro := enableOffload(rc)
		s.gso.Store(gso)
		s.gro = gro
		s.rs = newRawSender(rc)
	}
	go s.readLoop()
	return s, nil
}

// LocalAddr is the bound address.
func (s *Socket) LocalAddr() netip.AddrPort { return s.local }

// Send sends one raw datagram.
func (s *Socket) Send(p []byte, to netip.AddrPort) error {
	_, err := s.conn.WriteToUDPAddrPort(p, to)
	if err != nil {
		return fmt.Errorf("udx: send to %s: %w", to, err)
	}
	return nil
}

// SendTTL sends one raw datagram with the given IP time to live. A
// holepunch sends with a short one to open its own NAT's mapping without
// reaching the peer's NAT, which might take an unexpected packet as cause
// to change its own mapping.
func (s *Socket) SendTTL(p []byte, to netip.AddrPort, ttl int) error {
	if _, _, err := s.conn.WriteMsgUDPAddrPort(p, ttlControl(ttl), to); err != nil {
		return fmt.Errorf("udx: send to %s: %w", to, err)
	}
	return nil
}

// Close stops the socket. Streams still on it fail with net.ErrClosed.
func (s *Socket) Close() error {
	var err error
	s.once.Do(func() {
		err = s.conn.Close()
		<-s.done
		s.u.mu.Lock()
		var on []*Stream
		for _, st := range s.u.streams {
			if st.socketIs(s) {
				on = append(on, st)
			}
		}
		s.u.mu.Unlock()
		for _, st := range on {
			st.fail(net.ErrClosed)
		}
	})
	return err
}

// maxAckHold and maxAckHoldBytes bound the datagrams, and the bytes,
// read in a row whose acks may wait: 32 of a JS peer's packets, one ack
// for each of the reader's fullest reads, or eight GRO-coalesced runs of
// a Go peer's, 350 packets. Thirty-two such runs in a row held the acks
// back for 1,400 packets, and a sender filling the window retransmitted.
const (
	maxAckHold      = 32
	maxAckHoldBytes = 8 * readBufferSize
)

// datagramReader reads what waits on a socket: read fills its slots with
// the datagrams waiting, at least one, and returns how many; with wait
// false it returns 0 at once when none waits. datagram returns slot i's
// bytes, control data and sender, valid until the next read. close gives
// back what the reader held of the instance's.
type datagramReader interface {
	read(wait bool) (int, error)
	datagram(i int) (p, oob []byte, from netip.AddrPort)
	close()
}

// readLoop reads datagrams, or runs of coalesced ones, and dispatches them.
// The acks the streams owe are held while more datagrams wait, up to
// maxAckHold datagrams or maxAckHoldBytes, and sent once none does: one
// ack then covers them all, and each ack is a send, a receiver's largest
// cost after its reads.
func (s *Socket) readLoop() {
	defer close(s.done)
	r := newDatagramReader(s)
	defer r.close()
	held, heldBytes := 0, 0
	for {
		n, err := r.read(len(s.pendingAcks) == 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n == 0 { // nothing waits: the acks go now
			s.flushAcks()
			held, heldBytes = 0, 0
			continue
		}
		s.readAt = time.Now()
		for i := range n {
			p, oob, from := r.datagram(i)
			s.u.count.bytesReceived.Add(uint64(len(p)))
			seg := len(p)
			if s.gro {
				if g := groSegmentSize(oob); g > 0 {
					seg = g
				}
			}
			for off := 0; off < len(p); off += seg {
				s.dispatch(p[off:min(off+seg, len(p))], from)
			}
			held++
			if heldBytes += len(p); held >= maxAckHold || heldBytes >= maxAckHoldBytes {
				s.flushAcks()
				held, heldBytes = 0, 0
			}
		}
		s.flushStreams()
	}
}

// singleReader reads one datagram a call, where datagrams cannot be read
// in batches.
type singleReader struct {
	conn  *net.UDPConn
	calls *atomic.Uint64
	buf   []byte
	oob   []byte
	n     int
	oobn  int
	from  netip.AddrPort
}

// read cannot tell whether a datagram waits without waiting for one, so
// it answers 0 when asked not to wait: the acks owed go after every read.
func (r *singleReader) read(wait bool) (int, error) {
	if !wait {
		return 0, nil
	}
	if r.buf == nil {
		r.buf, r.oob = make([]byte, readBufferSize), make([]byte, oobSize)
	}
	var err error
	r.calls.Add(1)
	r.n, r.oobn, _, r.from, err = r.conn.ReadMsgUDPAddrPort(r.buf, r.oob)
	if err != nil {
		return 0, err
	}
	r.from = netip.AddrPortFrom(r.from.Addr().Unmap(), r.from.Port())
	return 1, nil
}

func (r *singleReader) datagram(int) (p, oob []byte, from netip.AddrPort) {
	return r.buf[:r.n], r.oob[:r.oobn], r.from
}

func (r *singleReader) close() {}

// queueFlush notes that st may send more at the end of this read.
func (s *Socket) queueFlush(st *Stream) { s.pendingFlushes = append(s.pendingFlushes, st) }

func (s *Socket) flushStreams() {
	for i, st := range s.pendingFlushes {
		st.flushOwedSends()
		s.pendingFlushes[i] = nil
	}
	s.pendingFlushes = s.pendingFlushes[:0]
}

// queueAck notes that st owes an ack at the end of this read.
func (s *Socket) queueAck(st *Stream) { s.pendingAcks = append(s.pendingAcks, st) }

func (s *Socket) flushAcks() {
	for i, st := range s.pendingAcks {
		st.sendPendingAck()
		s.pendingAcks[i] = nil
	}
	s.pendingAcks = s.pendingAcks[:0]
}

func (s *Socket) dispatch(p []byte, from netip.AddrPort) {
	if IsPacket(p) {
		if st := s.u.lookup(PacketStreamID(p)); st != nil && st.onPacket(s, p, from) {
			return
		}
	}
	if s.raw != nil {
		s.raw(p, from)
	}
}

// write sends a stream packet.
func (s *Socket) write(p []byte, to netip.AddrPort) error {
	return s.sendmsg(p, nil, to)
}

// sendmsg sends p, with the control message oob if any, in one system call.
func (s *Socket) sendmsg(p, oob []byte, to netip.AddrPort) error {
	parts := [1][]byte{p}
	return s.sendParts(parts[:], oob, to)
}

// sendParts sends parts laid end to end as one datagram (or, with a GSO
// control message in oob, as its segments), in one system call.
func (s *Socket) sendParts(parts [][]byte, oob []byte, to netip.AddrPort) error {
	s.u.count.sendCalls.Add(1)
	if s.rs != nil {
		if sent, err := s.rs.send(parts, oob, to); sent {
			return err
		}
	}
	p := parts[0]
	if len(parts) > 1 {
		// Only where the raw sender cannot name the address (a scoped
		// one): the net package sends from one buffer.
		p = bytes.Join(parts, nil)
	}
	_, _, err := s.conn.WriteMsgUDPAddrPort(p, oob, to)
	return err
}

// writeSegments sends n packets laid end to end in parts, each seg bytes
// but the last, with one system call where the kernel segments them: the
// kernel gathers the parts, so a packet's header and payload need not be
// copied together first.
func (s *Socket) writeSegments(parts [][]byte, seg, n int, to netip.AddrPort, oob []byte) ([]byte, error) {
	if n > 1 && s.gso.Load() {
		oob = gsoControl(oob, seg)
		err := s.sendParts(parts, oob, to)
		if err == nil {
			return oob, nil
		}
		if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EINVAL) {
			return oob, err
		}
		// The device cannot segment: send one at a time from now on.
		s.gso.Store(false)
	}
	// A packet at a time: the parts cut at every seg bytes, which may fall
	// inside a part.
	var cut [][]byte
	left := seg
	for _, part := range parts {
		for len(part) > 0 {
			k := min(len(part), left)
			cut = append(cut, part[:k])
			part, left = part[k:], left-k
			if left == 0 {
				if err := s.sendParts(cut, nil, to); err != nil {
					return oob, err
				}
				cut, left = cut[:0], seg
			}
		}
	}
	if len(cut) > 0 { // the last packet, shorter
		return oob, s.sendParts(cut, nil, to)
	}
	return oob, nil
}
