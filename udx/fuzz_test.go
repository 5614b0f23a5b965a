package udx

import (
	"net"
	"net/netip"
	"testing"
)

// FuzzPacket feeds arbitrary packets to a connected stream (and, for
// datagrams that are not packets, to the socket's raw path). Nothing may
// panic.
func FuzzPacket(f *testing.F) {
	var h [HeaderSize]byte
	(&header{flags: FlagData, id: 1, rwnd: 1 << 20, seq: 0, ack: 0}).put(h[:])
	f.Add(append(h[:], "data"...))
	(&header{flags: FlagSACK, id: 1, seq: 0, ack: 0}).put(h[:])
	f.Add(appendRange(h[:], 3, 9))
	(&header{flags: FlagEnd | FlagData, dataOffset: 32, id: 1, seq: 1}).put(h[:])
	f.Add(append(h[:], make([]byte, 40)...))
	(&header{flags: FlagDestroy | FlagMessage | FlagHeartbeat, id: 1, seq: 5}).put(h[:])
	f.Add(h[:])

	u := New()
	// A socket with no reader of its own: the fuzz target is its reader,
	// dispatching as a read does and then sending what the read owes.
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	sock := &Socket{u: u, conn: conn, raw: func([]byte, netip.AddrPort) {}, done: make(chan struct{})}
	sink, _ := New().Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
	from := sink.LocalAddr()
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := u.NewStream(1)
		if err != nil {
			t.Fatal(err)
		}
		s.Connect(sock, 2, from)
		s.Write([]byte("some data to have in flight"))
		sock.dispatch(p, from)
		sock.dispatch(p, from)
		sock.flushStreams()
		sock.flushAcks()
		s.Close()
		u.release(s)
	})
}
