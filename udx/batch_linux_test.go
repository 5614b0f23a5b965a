package udx

import (
	"net"
	"net/netip"
	"testing"
)

// loopbackReader is a batch reader on a fresh loopback socket of u, and
// a socket that sends to it.
func loopbackReader(t *testing.T, u *UDX) (*batchReader, func(n int)) {
	t.Helper()
	lo := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0"))
	conn, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	peer, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	r := newDatagramReader(&Socket{u: u, conn: conn}).(*batchReader)
	to := conn.LocalAddr().(*net.UDPAddr)
	send := func(n int) {
		for range n {
			if _, err := peer.WriteToUDP(make([]byte, 1200), to); err != nil {
				t.Fatal(err)
			}
		}
	}
	return r, send
}

// drain reads until nothing waits.
func drain(t *testing.T, r *batchReader) {
	t.Helper()
	for {
		n, err := r.read(false)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// TestReaderSlotsFollowTheLoad: a socket's slots grow to maxBatch while
// datagrams wait faster than it reads, stay through small reads, go back
// to the instance once no read has filled them for idleSlots, and when
// the reader closes; a lone datagram read into a lone slot does not grow
// it.
func TestReaderSlotsFollowTheLoad(t *testing.T) {
	u := New()
	r, send := loopbackReader(t, u)
	send(1)
	if _, err := r.read(true); err != nil {
		t.Fatal(err)
	}
	drain(t, r)
	if len(r.hdrs) != 1 || u.slots.held.Load() != 0 {
		t.Fatalf("one datagram left %d slots, %d of the instance's held", len(r.hdrs), u.slots.held.Load())
	}
	grow := func() {
		for len(r.hdrs) < maxBatch {
			before := len(r.hdrs)
			send(2 * maxBatch) // within the socket's receive buffer
			drain(t, r)
			if len(r.hdrs) == before {
				t.Fatalf("stuck at %d slots with datagrams waiting", before)
			}
		}
	}
	grow()
	if got := u.slots.held.Load(); got != maxBatch-1 {
		t.Fatalf("%d slots held of the instance's, want %d", got, maxBatch-1)
	}
	// Small reads keep the slots; the first read once no read has filled
	// them for idleSlots gives them back, and its datagram comes whole.
	for i := range 4 {
		send(1)
		n, err := r.read(true)
		if err != nil {
			t.Fatal(err)
		}
		if p, _, _ := r.datagram(0); n != 1 || len(p) != 1200 {
			t.Fatalf("small read %d: %d datagrams, the first of %d bytes", i, n, len(p))
		}
		if i < 3 && len(r.hdrs) != maxBatch {
			t.Fatalf("small read %d left %d slots", i, len(r.hdrs))
		}
		if i == 2 {
			r.since = r.since.Add(-idleSlots) // as if that long had passed
		}
	}
	if len(r.hdrs) != 1 || u.slots.held.Load() != 0 {
		t.Fatalf("after %v without a full read: %d slots, %d of the instance's held", idleSlots, len(r.hdrs), u.slots.held.Load())
	}
	grow()
	r.close()
	if got := u.slots.held.Load(); got != 0 {
		t.Fatalf("%d slots still held after the reader closed", got)
	}
	if c := u.Counts(); c.SlotsHeld != 0 || c.SlotsRefused != 0 {
		t.Fatalf("one socket alone: Counts says %d slots held, %d refusals", c.SlotsHeld, c.SlotsRefused)
	}
}

// TestReaderSlotsShareABound: however many sockets are busy, together
// they hold at most sharedSlots beyond their first.
func TestReaderSlotsShareABound(t *testing.T) {
	u := New()
	readers := make([]*batchReader, sharedSlots/maxBatch+2)
	sends := make([]func(int), len(readers))
	for i := range readers {
		readers[i], sends[i] = loopbackReader(t, u)
	}
	for range 8 {
		for i, r := range readers {
			sends[i](2 * maxBatch)
			drain(t, r)
		}
	}
	extra := 0
	for _, r := range readers {
		extra += len(r.hdrs) - 1
	}
	if held := u.slots.held.Load(); held != int64(extra) || held > sharedSlots {
		t.Fatalf("readers hold %d slots beyond their first, the instance counts %d, bound %d", extra, held, sharedSlots)
	}
	if extra < sharedSlots-maxBatch {
		t.Fatalf("busy readers grew to only %d slots beyond their first, bound %d", extra, sharedSlots)
	}
	// More readers are busy than the bound serves: the instance says so.
	if c := u.Counts(); c.SlotsHeld != uint64(extra) || c.SlotsRefused == 0 {
		t.Fatalf("Counts: %d slots held (readers hold %d), %d refusals (want some)", c.SlotsHeld, extra, c.SlotsRefused)
	}
}
