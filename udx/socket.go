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
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Stream ids are chosen by the caller; a UDX instance holds the ids of its
// live streams across all its sockets, as a libudx instance does.
type UDX struct {
	mu      sync.Mutex
	streams map[uint32]*Stream
}

// New returns an empty UDX instance.
func New() *UDX { return &UDX{streams: map[uint32]*Stream{}} }

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
}

// readBufferSize is the largest datagram a socket reads.
const readBufferSize = 64 << 10

// Listen binds a socket on addr (port 0 picks one) and starts its reader;
// raw receives every datagram that is not a packet of a live stream and may
// be nil.
func (u *UDX) Listen(addr netip.AddrPort, raw RawHandler) (*Socket, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("udx: listen %s: %w", addr, err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	s := &Socket{u: u, conn: conn, raw: raw, done: make(chan struct{})}
	s.local = conn.LocalAddr().(*net.UDPAddr).AddrPort()
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

func (s *Socket) readLoop() {
	defer close(s.done)
	buf := make([]byte, readBufferSize)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.dispatch(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
	}
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
	_, err := s.conn.WriteToUDPAddrPort(p, to)
	return err
}
