package worker

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/udx"
)

// message is a SecretStream message as the peer's stream carries it: its
// length in 3 bytes, little-endian, then its bytes.
func message(n int, fill byte) []byte {
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16)}, bytes.Repeat([]byte{fill}, n)...)
}

// ends is where messages end in b: the count of bytes after which one did.
func ends(b []byte) []int {
	var at []int
	for i := 0; i+3 <= len(b); {
		i += 3 + int(b[i]) | int(b[i+1])<<8 | int(b[i+2])<<16
		if i <= len(b) {
			at = append(at, i)
		}
	}
	return at
}

// TestMessageEndsFollowsLengths: fed a stream in pieces, the tracker says
// a message ended in a piece exactly when one did, whatever the cuts
// (inside a length too), and asks for the bytes that end it.
func TestMessageEndsFollowsLengths(t *testing.T) {
	b := bytes.Join([][]byte{message(5, 1), message(0, 0), message(70000, 2), message(1, 3)}, nil)
	want := ends(b)
	for _, cut := range []int{1, 2, 3, 4, 7, 1000, 65536, len(b)} {
		var e messageEnds
		var got []int
		for i := 0; i < len(b); i += cut {
			if e.need() < 1 {
				t.Fatalf("cut %d: asks for %d bytes at %d", cut, e.need(), i)
			}
			j := min(i+cut, len(b))
			if e.advance(b[i:j]) {
				got = append(got, j)
			}
		}
		// The pieces that saw an end are those holding one of want.
		var held []int
		for _, w := range want {
			j := min(((w-1)/cut+1)*cut, len(b))
			if len(held) == 0 || held[len(held)-1] != j {
				held = append(held, j)
			}
		}
		if !slices.Equal(got, held) {
			t.Fatalf("cut %d: ends seen after %v, want %v", cut, got, held)
		}
	}
	var e messageEnds
	e.advance(b[:10]) // the first message, and 2 bytes of the empty one's length
	if e.need() != 1 {
		t.Fatalf("with 2 of a length's 3 bytes read, need %d, want 1", e.need())
	}
	if !e.advance(b[10:11]) || e.need() != 3 {
		t.Fatalf("the empty message did not end, or the next length is not asked for (need %d)", e.need())
	}
	e.advance(b[11:14])
	if e.need() != 70000 {
		t.Fatalf("with a length read, need %d, want the message's 70000", e.need())
	}
}

// FuzzMessageEnds: any bytes in any two pieces leave the tracker where the
// whole would, and it always asks for at least one byte more.
func FuzzMessageEnds(f *testing.F) {
	f.Add(message(3, 1), 2)
	f.Add([]byte{0, 0, 0, 1, 0}, 4)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			return
		}
		var whole, parts messageEnds
		endedWhole := whole.advance(b)
		endedParts := parts.advance(b[:cut])
		endedParts = parts.advance(b[cut:]) || endedParts
		if whole != parts || endedWhole != endedParts || whole.need() < 1 {
			t.Fatalf("whole %+v (%v), in parts %+v (%v)", whole, endedWhole, parts, endedParts)
		}
	})
}

// rawPair is a UDX stream to a test's writer over loopback: the worker's
// end of a non-custodial connection, and the peer's.
func rawPair(t *testing.T) (worker, peer *udx.Stream) {
	u := udx.New()
	listen := func() *udx.Socket {
		s, err := u.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	sa, sb := listen(), listen()
	worker, _ = u.NewStream(1)
	peer, _ = u.NewStream(2)
	worker.Connect(sa, 2, sb.LocalAddr())
	peer.Connect(sb, 1, sa.LocalAddr())
	t.Cleanup(func() { worker.Close(); peer.Close() })
	return worker, peer
}

// frames reads the worker's frames of a non-custodial stream as its
// reader pump does, with credit enough, until it has n bytes.
func frames(t *testing.T, st *stream, r atLeastReader, n int) [][]byte {
	var got [][]byte
	buf := make([]byte, routing.MaxRawChunk)
	for total := 0; total < n; {
		credit, err := st.gate.TryTake(1, routing.MaxChunk)
		if err != nil || credit == 0 {
			t.Fatalf("no credit: %v", err)
		}
		k, took, err := st.readRaw(r, buf, credit)
		if err != nil {
			t.Fatal(err)
		}
		st.gate.Return(took) // the edge's grant, at once
		got = append(got, bytes.Clone(buf[:k]))
		total += k
	}
	return got
}

// TestRawFramesEndWithMessages: a non-custodial stream's bytes go to the
// edge in frames that end where a peer's message does or are full, not in
// the pieces its packets bring: a 64 KiB write's message (20 bytes over
// two chunks) in two frames, and a short message, with nothing after it,
// at once.
func TestRawFramesEndWithMessages(t *testing.T) {
	w, peer := rawPair(t)
	st := &stream{gate: routing.NewGate()}
	big := message(65536+17, 7)
	for range 3 {
		if _, err := peer.Write(big); err != nil {
			t.Fatal(err)
		}
	}
	got := frames(t, st, w, 3*len(big))
	if len(got) != 6 {
		t.Fatalf("three messages of %d bytes came in %d frames, want 6", len(big), len(got))
	}
	for i, f := range got {
		want := routing.MaxChunk
		if i%2 == 1 {
			want = len(big) - routing.MaxChunk
		}
		if len(f) != want || !bytes.Equal(f, big[i%2*routing.MaxChunk:][:want]) {
			t.Fatalf("frame %d: %d bytes, want %d of the message", i, len(f), want)
		}
	}
	// A message sent in slivers, a packet each with pauses between, still
	// goes whole; and a short one goes alone, without waiting for more.
	small := message(3000, 8)
	done := make(chan [][]byte, 1)
	go func() { done <- frames(t, st, w, len(small)) }()
	for i := 0; i < len(small); i += 1000 {
		peer.Write(small[i:min(i+1000, len(small))])
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case f := <-done:
		if len(f) != 1 || !bytes.Equal(f[0], small) {
			t.Fatalf("a message sent in slivers came in %d frames", len(f))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message sent in slivers did not come")
	}
	tiny := message(10, 9)
	peer.Write(tiny)
	if f := frames(t, st, w, len(tiny)); len(f) != 1 || !bytes.Equal(f[0], tiny) {
		t.Fatalf("a short message came as %d frames", len(f))
	}
}

// TestRawFramesEndWithTheStream: bytes of a message the peer never
// finishes go on when its stream ends, and the end follows them.
func TestRawFramesEndWithTheStream(t *testing.T) {
	w, peer := rawPair(t)
	st := &stream{gate: routing.NewGate()}
	part := message(10000, 5)[:4000]
	peer.Write(part)
	peer.CloseWrite()
	buf := make([]byte, routing.MaxRawChunk)
	var got []byte
	for {
		k, took, err := st.readRaw(w, buf, routing.MaxChunk)
		got = append(got, buf[:k]...)
		if took != routing.MaxChunk {
			t.Fatalf("took %d bytes of credit for a message that cannot end", took)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	if !bytes.Equal(got, part) {
		t.Fatalf("got %d bytes of the unfinished message, want its %d", len(got), len(part))
	}
}
