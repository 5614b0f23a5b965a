package udx

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/await"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

func listen(t testing.TB, u *UDX, raw RawHandler) *Socket {
	t.Helper()
	s, err := u.Listen(loopback, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitFor[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
	}
	panic("unreachable")
}

func TestRawAndMessages(t *testing.T) {
	u := New()
	raws := make(chan string, 4)
	sa := listen(t, u, nil)
	sb := listen(t, u, func(p []byte, from netip.AddrPort) { raws <- string(p) })
	// Not a packet, and a packet-shaped datagram for no live stream.
	sa.Send([]byte("dht-rpc"), sb.LocalAddr())
	ghost := make([]byte, HeaderSize)
	ghost[0], ghost[1] = magic, version
	PutStreamID(ghost, 999)
	sa.Send(ghost, sb.LocalAddr())
	if got := waitFor(t, raws); got != "dht-rpc" {
		t.Fatalf("raw got %q", got)
	}
	if got := waitFor(t, raws); got != string(ghost) {
		t.Fatal("packet for unknown id not handed to raw")
	}
	a, _ := u.NewStream(1)
	b, _ := u.NewStream(2)
	a.Connect(sa, 2, sb.LocalAddr())
	b.Connect(sb, 1, sa.LocalAddr())
	msgs := make(chan string, 1)
	b.SetMessageHandler(func(p []byte) { msgs <- string(p) })
	if err := a.Send([]byte("datagram")); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, msgs); got != "datagram" {
		t.Fatalf("message %q", got)
	}
}

func TestFirewallConnectsOnFirstPacket(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(10)
	b, _ := ub.NewStream(20)
	seen := make(chan netip.AddrPort, 1)
	b.SetFirewall(func(sock *Socket, from netip.AddrPort) bool {
		seen <- from
		b.Connect(sock, 10, from)
		return true
	})
	a.Connect(sa, 20, sb.LocalAddr())
	a.Write([]byte("knock"))
	a.CloseWrite()
	if from := waitFor(t, seen); from != sa.LocalAddr() {
		t.Fatalf("firewall saw %v", from)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "knock" {
		t.Fatalf("got %q, %v", got, err)
	}
	b.CloseWrite()
	if _, err := io.ReadAll(a); err != nil {
		t.Fatal(err)
	}

	// A firewall that refuses drops the packets.
	c, _ := ub.NewStream(30)
	c.SetFirewall(func(*Socket, netip.AddrPort) bool { return false })
	d, _ := ua.NewStream(40)
	d.Connect(sa, 30, sb.LocalAddr())
	d.Write([]byte("x"))
	time.Sleep(50 * time.Millisecond)
	if c.RemoteID() != 0 {
		t.Fatal("refused stream got connected")
	}
	d.Close()
}

// TestFirewallTakesPacketsFromAPathLeft: a stream that stays on one path
// takes in the packets its firewall accepts from another, as a stream that
// moved off a relay must take what the peer still sends over it.
func TestFirewallTakesPacketsFromAPathLeft(t *testing.T) {
	ua, ub := New(), New()
	sa, left, on := listen(t, ua, nil), listen(t, ub, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	b.Connect(on, 1, sa.LocalAddr())
	accepted := make(chan struct{}, 1)
	b.SetFirewall(func(sock *Socket, from netip.AddrPort) bool {
		if sock == left && from == sa.LocalAddr() {
			select {
			case accepted <- struct{}{}:
			default:
			}
			return true
		}
		return false
	})
	a.Connect(sa, 2, left.LocalAddr()) // a still sends where b was
	data := bytes.Repeat([]byte("still here "), 10000)
	go func() {
		a.Write(data)
		a.CloseWrite()
	}()
	waitFor(t, accepted)
	got := make(chan []byte, 1)
	go func() {
		p, _ := io.ReadAll(b)
		got <- p
	}()
	if p := waitFor(t, got); !bytes.Equal(p, data) {
		t.Fatalf("got %d of %d bytes", len(p), len(data))
	}
	if b.Socket() != on {
		t.Fatal("the stream moved")
	}
}

func TestRelayTo(t *testing.T) {
	// a <-> r1 ... r2 <-> c, with r1 and r2 relaying into each other.
	ua, ur, uc := New(), New(), New()
	sa, sr, sc := listen(t, ua, nil), listen(t, ur, nil), listen(t, uc, nil)
	a, _ := ua.NewStream(1)
	c, _ := uc.NewStream(4)
	r1, _ := ur.NewStream(2)
	r2, _ := ur.NewStream(3)
	r1.Connect(sr, 1, sa.LocalAddr())
	r2.Connect(sr, 4, sc.LocalAddr())
	r1.RelayTo(r2)
	r2.RelayTo(r1)
	// Each end addresses the relay stream but names the far end's id in
	// nothing: the relay rewrites ids.
	a.Connect(sa, 2, sr.LocalAddr())
	c.Connect(sc, 3, sr.LocalAddr())
	data := bytes.Repeat([]byte("relayed "), 50000)
	go func() {
		a.Write(data)
		a.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("relayed %d bytes, %v", len(got), err)
	}
	// The relay is no endpoint: closing its streams must not reset the
	// peers' streams, whose ids its remotes name.
	r1.Close()
	r2.Close()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-a.Done():
		t.Fatal("closing the relay's stream reset the peer's")
	case <-c.Done():
		t.Fatal("closing the relay's stream reset the peer's")
	default:
	}
}

func TestCloseWakesBlockedReader(t *testing.T) {
	u := New()
	s := listen(t, u, nil)
	a, _ := u.NewStream(1)
	a.Connect(s, 2, netip.MustParseAddrPort("127.0.0.1:9"))
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	if err := waitFor(t, errc); err == nil {
		t.Fatal("read returned no error after close")
	}
}

// TestStalledReaderBoundsBuffer: a receiver that never reads holds at most
// RecvBufferSize; the writer blocks instead of growing memory.
func TestStalledReaderBoundsBuffer(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, sb.LocalAddr())
	b.Connect(sb, 1, sa.LocalAddr())
	written := make(chan int, 1)
	go func() {
		n, _ := a.Write(make([]byte, 32<<20))
		written <- n
	}()
	time.Sleep(time.Second)
	b.mu.Lock()
	held := b.buffered
	b.mu.Unlock()
	a.mu.Lock()
	queued := a.queued
	a.mu.Unlock()
	if held > RecvBufferSize || queued > SendBufferSize {
		t.Fatalf("receiver holds %d, sender queues %d", held, queued)
	}
	select {
	case n := <-written:
		t.Fatalf("write of 32 MiB finished (%d) with a stalled reader", n)
	default:
	}
	a.Close()
	b.Close()
}

// TestFullWindowDropsNothing: a reader that stalls until the receive
// buffer is full, over and over, loses no packet. The sender waits for the
// window to open instead of sending what the receiver has no room for:
// each such packet would be dropped, held the packets behind it out of
// order, and cost the sender a retransmission and its window.
func TestFullWindowDropsNothing(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, sb.LocalAddr())
	b.Connect(sb, 1, sa.LocalAddr())
	const size = 64 << 20
	go func() {
		a.Write(make([]byte, size))
		a.CloseWrite()
	}()
	buf := make([]byte, 64<<10)
	got := 0
	read := func() error {
		n, err := b.Read(buf)
		got += n
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for got < size-2*RecvBufferSize {
		b.mu.Lock()
		full := b.window() < maxPayloadCap
		held := b.buffered
		b.mu.Unlock()
		if held > RecvBufferSize+maxPayloadCap {
			t.Fatalf("receiver holds %d bytes", held)
		}
		if !full {
			if time.Now().After(deadline) {
				t.Fatalf("the receive buffer did not fill; %d bytes read", got)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		// Drain half the buffer, so that the window opens while it is
		// still nearly full.
		for drained := got; got-drained < RecvBufferSize/2; {
			if err := read(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for read() == nil {
	}
	if got != size {
		t.Fatalf("read %d of %d bytes", got, size)
	}
	if st := b.Stats(); st.Dropped != 0 {
		t.Errorf("receiver dropped %d packets", st.Dropped)
	}
	if st := a.Stats(); st.Retransmits != 0 {
		t.Errorf("sender retransmitted %d packets (sender %+v, receiver %+v)", st.Retransmits, st, b.Stats())
	}
	a.Close()
	b.Close()
}

// TestHoleFilledInAFullBuffer: a receiver whose buffer is full of bytes
// held out of order behind one lost packet still takes that packet when
// it comes again. Dropped for want of room, as any other packet then is,
// the hole would never fill, the bytes behind it would never become
// readable, and the stream would stall for good, as a lossy transfer from
// a JS peer once did (4 MiB held, window 0, every resend of the hole
// dropped). Past the hole a full buffer still takes nothing.
func TestHoleFilledInAFullBuffer(t *testing.T) {
	u := New()
	sock, from := playedSocket(t, u)
	s, _ := u.NewStream(2)
	s.Connect(sock, 7, from)
	defer s.Close()
	sock.readAt = time.Now()
	// Packet 0 is lost; those after it fill the buffer out of order.
	last := uint32(RecvBufferSize/MaxPayload + 1)
	for seq := uint32(1); seq <= last; seq++ {
		s.onPacket(sock, playedPacket(seq, FlagData, MaxPayload), from)
	}
	s.mu.Lock()
	full := s.window() == 0
	s.mu.Unlock()
	if !full {
		t.Fatal("the packets behind the hole did not fill the buffer")
	}
	dropped := s.Stats().Dropped
	s.onPacket(sock, playedPacket(last+1, FlagData, MaxPayload), from)
	if s.Stats().Dropped != dropped+1 {
		t.Fatal("a full buffer took a packet past the hole")
	}
	s.onPacket(sock, playedPacket(0, FlagData, MaxPayload), from)
	sock.flushStreams()
	sock.flushAcks()
	s.mu.Lock()
	held := s.buffered
	s.mu.Unlock()
	// The buffer, less than a packet past it (the one that filled it), and
	// the hole's packet.
	if held >= RecvBufferSize+2*MaxPayload {
		t.Fatalf("%d bytes held, more than the buffer, the packet that filled it and the hole's", held)
	}
	buf := make([]byte, int(last+1)*MaxPayload)
	got := 0
	for got < len(buf) {
		s.mu.Lock()
		readable := s.readable.Len()
		s.mu.Unlock()
		if readable == 0 {
			t.Fatalf("%d bytes readable of %d: the resent hole was dropped", got, len(buf))
		}
		n, err := s.Read(buf[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	for seq := range last + 1 {
		if b := buf[int(seq)*MaxPayload]; b != byte(seq) {
			t.Fatalf("packet %d's bytes read where packet %d's belong", b, seq)
		}
	}
}

// TestChangeRemote moves one end to another socket mid-stream; unacked
// data follows it and the transfer completes.
func TestChangeRemote(t *testing.T) {
	ua, ub := New(), New()
	sa, sb1, sb2 := listen(t, ua, nil), listen(t, ub, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, sb1.LocalAddr())
	b.Connect(sb1, 1, sa.LocalAddr())
	data := bytes.Repeat([]byte("migrate "), 400000)
	go func() {
		a.Write(data[:len(data)/2])
		// b moves to its second socket; a is told the new address.
		b.ChangeRemote(sb2, 1, sa.LocalAddr())
		a.ChangeRemote(sa, 2, sb2.LocalAddr())
		a.Write(data[len(data)/2:])
		a.CloseWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d of %d bytes, %v", len(got), len(data), err)
	}
}

func TestDestroyWithError(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, sb.LocalAddr())
	b.Connect(sb, 1, sa.LocalAddr())
	mine := io.ErrClosedPipe
	a.Destroy(mine)
	if _, err := a.Write([]byte("x")); err != mine {
		t.Fatalf("local write after destroy: %v", err)
	}
	if _, err := b.Read(make([]byte, 1)); err != ErrReset {
		t.Fatalf("remote read after destroy: %v", err)
	}
}

// TestDestroyDropsWhatWasNotRead: a stream destroyed with data received
// and not read lets go of it at once, as a destroyed JS stream drops its
// buffer, and its reader gets the error, not the data.
func TestDestroyDropsWhatWasNotRead(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, sb.LocalAddr())
	b.Connect(sb, 1, sa.LocalAddr())
	go a.Write(make([]byte, 1<<20))
	await.Within(t, 10*time.Second, "256 KiB received and not read", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.buffered >= 256<<10
	})
	mine := io.ErrClosedPipe
	b.Destroy(mine)
	b.mu.Lock()
	held, empty := b.buffered, b.readable.Empty()
	b.mu.Unlock()
	if held != 0 || !empty {
		t.Fatalf("destroyed stream holds %d bytes (queue empty: %v)", held, empty)
	}
	if n, err := b.Read(make([]byte, 1024)); n != 0 || err != mine {
		t.Fatalf("read after destroy: %d bytes, %v", n, err)
	}
	a.Close()
}

// TestResetKeepsWhatArrivedBefore: a peer that writes, ends and destroys
// at once (a server answering with a count and closing, say) is read to
// its last byte: the DESTROY that follows its data does not drop what the
// reader had not read yet.
func TestResetKeepsWhatArrivedBefore(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, sb.LocalAddr())
	b.Connect(sb, 1, sa.LocalAddr())
	a.Write([]byte("268435456"))
	a.CloseWrite()
	a.Close()
	failed := func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.err
	}
	await.Within(t, 10*time.Second, "the DESTROY", func() bool { return failed() != nil })
	if err := failed(); !errors.Is(err, ErrReset) {
		t.Fatalf("b failed with %v, want a reset", err)
	}
	got, err := io.ReadAll(b)
	if string(got) != "268435456" || err != nil {
		t.Fatalf("read %q, %v after the reset; want the bytes before it and EOF", got, err)
	}
	b.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.readable.Empty() || b.buffered != 0 {
		t.Fatalf("closed stream holds %d bytes", b.buffered)
	}
}

// TestDestroyLetsGoOfWhatWasNotAcked: a destroyed stream gives back at
// once the packets it had sent or queued and the remote never acked.
func TestDestroyLetsGoOfWhatWasNotAcked(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	a.Connect(sa, 2, sb.LocalAddr()) // no stream 2 there: nothing is acked
	if n, err := a.Write(make([]byte, maxUnsent)); n != maxUnsent || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	a.mu.Lock()
	held := len(a.out) - a.outHead
	a.mu.Unlock()
	if held < maxUnsent/MaxPayload {
		t.Fatalf("%d packets held before the destroy, want the whole write's", held)
	}
	a.Destroy(io.ErrClosedPipe)
	a.mu.Lock()
	held, queued, inflight := len(a.out)-a.outHead, a.queued, a.inflight
	a.mu.Unlock()
	if held != 0 || queued != 0 || inflight != 0 {
		t.Fatalf("destroyed stream holds %d packets (%d bytes queued, %d in flight)", held, queued, inflight)
	}
	if _, err := a.Write([]byte("x")); err != io.ErrClosedPipe {
		t.Fatalf("write after destroy: %v", err)
	}
}

// playedSocket is a socket of u without its reader, whose reads the test
// plays, and the address of a peer that takes whatever it is sent (the
// acks) and drops it; both close when the test ends.
func playedSocket(t *testing.T, u *UDX) (*Socket, netip.AddrPort) {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	peer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	go io.Copy(io.Discard, peer)
	return &Socket{u: u, conn: conn}, peer.LocalAddr().(*net.UDPAddr).AddrPort()
}

// playedPacket is a data packet, with flags, to stream 2 of a played
// socket: size bytes, each the low byte of seq.
func playedPacket(seq uint32, flags byte, size int) []byte {
	p := make([]byte, HeaderSize+size)
	h := header{flags: flags, id: 2, rwnd: RecvBufferSize, seq: seq}
	h.put(p)
	for i := range size {
		p[HeaderSize+i] = byte(seq)
	}
	return p
}

// readerWoken takes the wake s's reader was owed, if any, and says so.
func readerWoken(s *Stream) bool {
	select {
	case <-s.readCh:
		return true
	default:
		return false
	}
}

// TestAcksStretchOnceARunIsUnderWay reads a stream packets one a read,
// as udx-native's arrive on loopback, 100 µs apart: the first quickAcks
// are acked as they are read, as the sender's window opens, and the rest
// up to ackEvery a packet; after a pause longer than ackDelay a run starts
// over. An ack for every read, as before, was an ack a packet. The
// socket's reads are played here, on a clock of the test's own.
func TestAcksStretchOnceARunIsUnderWay(t *testing.T) {
	u := New()
	sock, from := playedSocket(t, u)
	b, _ := u.NewStream(2)
	b.Connect(sock, 7, from)
	defer b.Close()

	at := time.Now()
	seq := uint32(0)
	// run reads n packets, one a read, and returns the acks they drew.
	run := func(n int) int {
		before := u.Counts().AcksSent
		for range n {
			sock.readAt = at
			b.onPacket(sock, playedPacket(seq, FlagData, 100), from)
			sock.flushStreams()
			sock.flushAcks()
			seq++
			at = at.Add(100 * time.Microsecond)
		}
		return int(u.Counts().AcksSent - before)
	}
	if quick := run(quickAcks); quick != quickAcks {
		t.Errorf("%d acks for the first %d packets, each read alone, want one a read", quick, quickAcks)
	}
	// At most one ack for 8 packets once under way: ackEvery is 16, and
	// the rest is room for the acks of the stream's timer, which runs on
	// the wall clock while the reads are played.
	const stretched = 1024
	if got := run(stretched); got > stretched/8 {
		t.Errorf("%d acks for %d packets once the run was under way, want at most one in 8", got, stretched)
	}
	at = at.Add(2 * ackDelay)
	if again := run(quickAcks); again < quickAcks {
		t.Errorf("%d acks for %d packets after a pause, want one a read", again, quickAcks)
	}
}

// TestSparePacketsServeTheNextWrite acks a stream's writes by hand (its
// remote has no stream to ack them): the packets an ack frees serve the
// next write, none from the pool, and go back to the pool an RTO after
// the stream went idle; a stream that sent a packet or two keeps none.
func TestSparePacketsServeTheNextWrite(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	a.Connect(sa, 2, sb.LocalAddr())
	defer a.Close()
	const write = 64 << 10
	ackAll := func() (spares map[*outPacket]bool, timerArmed bool) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for a.outHead < len(a.out) { // the window opens as acks come
			a.onAck(a.sndNxt, nil, time.Now())
			a.flush() // as at the end of the read
		}
		spares = map[*outPacket]bool{}
		for _, p := range a.spare {
			spares[p] = true
		}
		return spares, a.timerArmed
	}
	if _, err := a.Write(make([]byte, write)); err != nil {
		t.Fatal(err)
	}
	spares, armed := ackAll()
	if want := write / MaxPayload; len(spares) < want || !armed {
		t.Fatalf("%d spare packets after acking %d, timer armed %v; want the write's %d, armed", len(spares), write, armed, want)
	}
	if _, err := a.Write(make([]byte, write)); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	for _, p := range a.out[a.outHead:] {
		if !spares[p] {
			t.Errorf("packet %d came from the pool, with %d spares", p.seq, len(spares))
			break
		}
	}
	a.mu.Unlock()
	ackAll()
	await.True(t, "spares given back an RTO after the stream went idle", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.spare == nil && !a.timerArmed
	})

	if _, err := a.Write([]byte("one packet")); err != nil {
		t.Fatal(err)
	}
	if spares, armed := ackAll(); len(spares) != 0 || armed {
		t.Fatalf("a stream that sent one packet keeps %d spares, timer armed %v", len(spares), armed)
	}
}

// TestBulkLeavesInBursts acks bulk writes one packet at a time, as
// libudx does (its remote has no stream: the test plays the acks): with
// more queued, new packets leave a burst at a time, not one an ack, a
// burst a quarter of a small window, and the window is never short of
// more than a burst; what is left when fewer than a burst wait, and a
// write to an idle stream, go at once.
func TestBulkLeavesInBursts(t *testing.T) {
	u, peer := New(), New()
	sock, dst := listen(t, u, nil), listen(t, peer, nil)
	s, _ := u.NewStream(1)
	s.Connect(sock, 2, dst.LocalAddr())
	defer s.Close()
	payload := make([]byte, MaxPayload)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, packets := range []int{200, 8} {
		window := packets * MaxPayload
		burst := min(minBurst, packets/4)
		s.cwnd, s.ssthresh, s.rate = window, window, rateEstimator{}
		for range 1000 + minBurst/2 { // not all bursts
			s.enqueue(FlagData, payload)
		}
		s.flush()
		if sent := int(s.sndNxt - s.sndUna()); sent < packets {
			t.Fatalf("%d packets sent into an open window of %d", sent, packets)
		}
		bursts := 0
		for s.seq-s.sndNxt >= minBurst {
			before := s.sndNxt
			s.onAck(s.sndUna()+1, nil, time.Now())
			// The window as set: neither its growth nor the rate floor
			// is under test.
			s.cwnd, s.rate = window, rateEstimator{}
			s.flush()
			switch sent := int(s.sndNxt - before); {
			case sent > 0 && sent < burst:
				t.Fatalf("window of %d: an ack sent %d packets, with %d queued", packets, sent, s.seq-before)
			case sent > 0:
				bursts++
			}
			if short := s.cwnd - s.inflight; short >= burst*s.payloadSize() {
				t.Fatalf("window of %d: %d bytes short of full with %d queued", packets, short, s.seq-s.sndNxt)
			}
		}
		if bursts == 0 {
			t.Fatalf("window of %d: no burst left", packets)
		}
		// A window with room for just what is queued, less than a burst.
		if s.seq == s.sndNxt {
			t.Fatalf("window of %d: the bursts left nothing queued", packets)
		}
		s.cwnd, s.rate = s.inflight+int(s.seq-s.sndNxt)*MaxPayload, rateEstimator{}
		s.flush()
		if s.sndNxt != s.seq {
			t.Fatalf("window of %d: %d packets held back with fewer than a burst queued", packets, s.seq-s.sndNxt)
		}
		s.onAck(s.sndNxt, nil, time.Now())
	}
	s.enqueue(FlagData, payload)
	s.flush()
	if s.sndNxt != s.seq || s.inflight == 0 {
		t.Fatal("a write to an idle stream waits")
	}
}

// behindShutWindow is a stream connected to a socket with no stream of
// its id, so nothing is acked, whose peer advertised a shut window: what
// it is given waits unsent. It is closed when the test ends.
func behindShutWindow(t *testing.T) *Stream {
	u, peer := New(), New()
	sock, dst := listen(t, u, nil), listen(t, peer, nil)
	s, _ := u.NewStream(1)
	s.Connect(sock, 2, dst.LocalAddr())
	t.Cleanup(func() { s.Close() })
	s.mu.Lock()
	s.sendRwnd = 0
	s.mu.Unlock()
	return s
}

// TestWriteWaitsForRoomForAWholePacket: a writer that finds room for less
// than a whole packet waits for room for one, instead of cutting one where
// the room ends: at the start of a SecretStream frame a packet of one or
// two bytes turns a JS peer's framed reads off, and any such cut is a
// packet and an ack more. Here the room is what maxUnsent leaves while
// the peer's window is shut, and it comes when the window opens.
func TestWriteWaitsForRoomForAWholePacket(t *testing.T) {
	s := behindShutWindow(t)
	if _, err := s.Write(make([]byte, maxUnsent-2)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	before := s.seq
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, 100))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // the writer's chance to cut a packet at the 2 bytes of room
	s.mu.Lock()
	cut := s.seq - before
	s.sendRwnd = RecvBufferSize // the window opens: the first packets leave
	s.flush()
	s.mu.Unlock()
	if cut != 0 {
		t.Fatalf("with 2 bytes of room a write of 100 queued %d packets at once", cut)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, last := s.seq-before, len(s.out[len(s.out)-1].data); n != 1 || last != 100 {
		t.Fatalf("a write of 100 bytes went in %d packets, the last of %d bytes", n, last)
	}
}

// TestWriteQueuesLittleAheadOfTheWindow: behind a shut window a writer
// queues maxUnsent and waits, however much room the send buffer has; as
// packets leave it queues more, without any ack.
func TestWriteQueuesLittleAheadOfTheWindow(t *testing.T) {
	s := behindShutWindow(t)
	done := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, 2*maxUnsent))
		done <- err
	}()
	state := func() (seq uint32, unsent, queued int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.seq, s.unsent, s.queued
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, unsent, _ := state(); unsent <= maxUnsent-MaxPayload; _, unsent, _ = state() {
		if time.Now().After(deadline) {
			t.Fatalf("the writer queued %d bytes behind a shut window", unsent)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the writer's chance to queue too much
	seq, unsent, n := state()
	if unsent > maxUnsent || n > maxUnsent {
		t.Fatalf("behind a shut window %d bytes queued, %d of them unsent; want at most %d", n, unsent, maxUnsent)
	}
	select {
	case err := <-done:
		t.Fatalf("a write of %d bytes returned behind a shut window (%v)", 2*maxUnsent, err)
	default:
	}
	s.mu.Lock()
	s.sendRwnd = RecvBufferSize
	first := s.sndNxt
	s.flush() // as far as the congestion window lets: an initial window's worth
	sent := s.sndNxt - first
	s.mu.Unlock()
	if sent == 0 {
		t.Fatal("nothing left when the window opened")
	}
	for next, _, _ := state(); next == seq; next, _, _ = state() {
		if time.Now().After(deadline) {
			t.Fatal("the writer queued nothing more after packets left")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPacketsKeepToWrites sends thousands of writes of assorted sizes,
// enough to fill the send buffer over and over, through a proxy that
// records each data packet: every write starts a packet, no packet holds
// bytes of two writes, and only a write's last packet is shorter than a
// packet at the base MTU. A JS peer's streams are framed: udx-native
// hands a SecretStream frame to JavaScript whole only while its packets
// keep to the frames, which the SecretStream writes one a write
// (docs/datapath.md, the UDX step).
func TestPacketsKeepToWrites(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	proxy, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	var mu sync.Mutex
	sent := map[uint32]int{} // data packets a sent, by seq: their payload
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := proxy.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			to := sa.LocalAddr()
			if from == sa.LocalAddr() {
				to = sb.LocalAddr()
				if h, err := decodeHeader(buf[:n]); err == nil && h.flags&FlagData != 0 {
					mu.Lock()
					if _, seen := sent[h.seq]; !seen {
						sent[h.seq] = n - HeaderSize - int(h.dataOffset)
					}
					mu.Unlock()
				}
			}
			proxy.WriteToUDPAddrPort(buf[:n], to)
		}
	}()
	via := proxy.LocalAddr().(*net.UDPAddr).AddrPort()
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, via)
	b.Connect(sb, 1, via)
	defer a.Close()
	defer b.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	writes, total := []int{1, 2, 3}, 6
	for total < 3*SendBufferSize {
		n := 1 + rng.IntN(9000)
		writes, total = append(writes, n), total+n
	}
	go func() {
		for _, n := range writes {
			if _, err := a.Write(make([]byte, n)); err != nil {
				return
			}
		}
		a.CloseWrite()
	}()
	got, err := io.Copy(io.Discard, b)
	if err != nil || got != int64(total) {
		t.Fatalf("read %d of %d bytes: %v", got, total, err)
	}
	mu.Lock()
	defer mu.Unlock()
	seqs := slices.Sorted(maps.Keys(sent))
	i := 0
	for w, n := range writes {
		for rest := n; rest > 0; {
			if i == len(seqs) {
				t.Fatalf("write %d of %d bytes: its packets end %d bytes short", w, n, rest)
			}
			p := sent[seqs[i]]
			i++
			switch {
			case p > rest:
				t.Fatalf("packet %d holds %d bytes of write %d and %d of the next", seqs[i-1], rest, w, p-rest)
			case p < rest && p < MaxPayload:
				t.Fatalf("write %d (%d bytes): packet %d cut at %d bytes with %d to come", w, n, seqs[i-1], p, rest-p)
			}
			rest -= p
		}
	}
}

// TestReaderWokenOnceARead plays reads of several packets, in order and
// out of it: the stream's reader is woken at a read's end, not at its
// first packet, and takes all the read brought in one Read; a read that
// brings more than wakeEvery wakes it each time that much has come.
func TestReaderWokenOnceARead(t *testing.T) {
	u := New()
	sock, from := playedSocket(t, u)
	s, _ := u.NewStream(2)
	s.Connect(sock, 7, from)
	defer s.Close()

	// A run of full packets: woken once wakeEvery has come, and again at
	// the read's end for the rest.
	sock.readAt = time.Now()
	for seq := range uint32(wakeEvery/MaxPayload + 2) {
		s.onPacket(sock, playedPacket(seq, FlagData, MaxPayload), from)
		if got, want := readerWoken(s), int(seq+1)*MaxPayload/wakeEvery > int(seq)*MaxPayload/wakeEvery; got != want {
			t.Fatalf("after %d bytes of the read, reader woken %v, want %v", int(seq+1)*MaxPayload, got, want)
		}
	}
	sock.flushStreams()
	sock.flushAcks()
	if !readerWoken(s) {
		t.Fatal("reader not woken at the end of the read to what came after the first wake")
	}
	if n, err := s.Read(make([]byte, 2*wakeEvery)); err != nil || n != (wakeEvery/MaxPayload+2)*MaxPayload {
		t.Fatalf("Read took %d bytes, %v", n, err)
	}

	first := uint32(wakeEvery/MaxPayload + 2)
	const packets, size = 8, 100
	// In order, then with the first packet of the read last.
	for _, order := range [][]uint32{{0, 1, 2, 3, 4, 5, 6, 7}, {9, 10, 11, 12, 13, 14, 15, 8}} {
		for i := range order {
			order[i] += first
		}
		sock.readAt = time.Now()
		for _, seq := range order {
			s.onPacket(sock, playedPacket(seq, FlagData, size), from)
		}
		if readerWoken(s) {
			t.Fatalf("reader woken before the read of %v ended", order)
		}
		sock.flushStreams()
		sock.flushAcks()
		if !readerWoken(s) {
			t.Fatalf("reader not woken at the end of the read of %v", order)
		}
		buf := make([]byte, 2*packets*size)
		n, err := s.Read(buf)
		if err != nil || n != packets*size {
			t.Fatalf("one Read after the read of %v took %d bytes, %v; want %d", order, n, err, packets*size)
		}
		if got := buf[n-size]; got != byte(slices.Max(order)) {
			t.Fatalf("the last bytes read are packet %d's, want %d's", got, slices.Max(order))
		}
	}
}

// TestReadFullWokenOnceItsBytesCame plays reads of one packet each to a
// reader waiting for five packets' bytes: it is not woken by the first
// four, is by the fifth and takes them all in one go; a reader waiting
// for more than the remote sent before its END is woken by the END and
// given what came, with io.ErrUnexpectedEOF.
func TestReadFullWokenOnceItsBytesCame(t *testing.T) {
	u := New()
	sock, from := playedSocket(t, u)
	s, _ := u.NewStream(2)
	s.Connect(sock, 7, from)
	defer s.Close()
	const size = 1000
	play := func(seq uint32, flags byte) {
		sock.readAt = time.Now()
		s.onPacket(sock, playedPacket(seq, flags, size), from)
		sock.flushStreams()
		sock.flushAcks()
	}

	s.mu.Lock()
	s.want = 5 * size // as ReadFull of five packets' bytes sets it before it waits
	s.mu.Unlock()
	for seq := range uint32(4) {
		play(seq, FlagData)
		if readerWoken(s) {
			t.Fatalf("reader waiting for %d bytes woken with %d", 5*size, (seq+1)*size)
		}
	}
	play(4, FlagData)
	if !readerWoken(s) {
		t.Fatalf("reader not woken once its %d bytes came", 5*size)
	}
	buf := make([]byte, 5*size)
	if n, err := s.ReadFull(buf); err != nil || n != len(buf) || buf[0] != 0 || buf[len(buf)-1] != 4 {
		t.Fatalf("ReadFull: %d bytes, %v, first from packet %d, last from %d", n, err, buf[0], buf[len(buf)-1])
	}

	s.mu.Lock()
	s.want = 5 * size
	s.mu.Unlock()
	play(5, FlagData)
	if readerWoken(s) {
		t.Fatal("reader woken by part of what it waits for")
	}
	play(6, FlagData|FlagEnd)
	if !readerWoken(s) {
		t.Fatal("reader waiting for more than will come not woken by the END")
	}
	if n, err := s.ReadFull(buf); err != io.ErrUnexpectedEOF || n != 2*size {
		t.Fatalf("ReadFull across the END: %d bytes, %v; want %d, %v", n, err, 2*size, io.ErrUnexpectedEOF)
	}
}

// TestReadFullAcrossTheWindow: a read larger than maxReadWait, as large
// as the receive buffer and then some, completes: the reader takes what
// it waits for in parts, so the sender is never held by a window the
// reader would only empty once it was past.
func TestReadFullAcrossTheWindow(t *testing.T) {
	ua, ub := New(), New()
	sa, sb := listen(t, ua, nil), listen(t, ub, nil)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, sb.LocalAddr())
	b.Connect(sb, 1, sa.LocalAddr())
	defer a.Close()
	defer b.Close()
	want := make([]byte, RecvBufferSize+maxReadWait+123)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go a.Write(want)
	got := make([]byte, len(want))
	errc := make(chan error, 1)
	go func() {
		_, err := b.ReadFull(got)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ReadFull of more than the receive buffer did not complete")
	}
	if !bytes.Equal(got, want) {
		t.Fatal("ReadFull's bytes differ from those written")
	}
}
