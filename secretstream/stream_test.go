package secretstream

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/noise"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func streamPair(t testing.TB, ka time.Duration) (*Stream, *Stream) {
	t.Helper()
	a, b := tcpPair(t)
	return streamsOver(t, a, b, ka)
}

// streamsOver runs the handshake over a, as the initiator, and b, with
// keepalive ka on both, and returns a's Stream and b's.
func streamsOver(t testing.TB, a, b RawStream, ka time.Duration) (*Stream, *Stream) {
	t.Helper()
	ka1, _ := noise.GenerateKeyPair(rand.Reader)
	kb, _ := noise.GenerateKeyPair(rand.Reader)
	type res struct {
		s   *Stream
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := New(b, false, Config{KeyPair: kb, KeepAlive: ka})
		ch <- res{s, err}
	}()
	si, err := New(a, true, Config{KeyPair: ka1, KeepAlive: ka})
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if si.RemotePublicKey() != kb.Public || r.s.RemotePublicKey() != ka1.Public || si.HandshakeHash() != r.s.HandshakeHash() {
		t.Fatal("handshake results disagree")
	}
	return si, r.s
}

func TestMessagesBothWays(t *testing.T) {
	a, b := streamPair(t, 0)
	sizes := []int{0, 1, 15, 16, 17, 47, 48, 63, 64, 1000, 65536, 1 << 20}
	go func() {
		for _, n := range sizes {
			p := bytes.Repeat([]byte{byte(n)}, n)
			if err := a.WriteMessage(p); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for _, n := range sizes {
		m, err := b.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m, bytes.Repeat([]byte{byte(n)}, n)) {
			t.Fatalf("message of %d bytes corrupted", n)
		}
	}
}

// TestMessageInParts: a message begun with its length and written in
// parts arrives as one message, between messages written whole; a whole
// message written while one begun lacks bytes is refused.
func TestMessageInParts(t *testing.T) {
	a, b := streamPair(t, 0)
	long := make([]byte, 300_001)
	rand.Read(long)
	go func() {
		a.WriteMessage([]byte("before"))
		if err := a.BeginMessage(len(long)); err != nil {
			t.Error(err)
			return
		}
		for off := 0; off < len(long); off += 32 << 10 {
			chunk := long[off:min(off+32<<10, len(long))]
			if off == 64<<10 {
				if err := a.WriteMessage([]byte("no")); !errors.Is(err, ErrMessageOpen) {
					t.Errorf("a message written inside one begun: %v", err)
				}
			}
			if _, err := a.Write(chunk); err != nil {
				t.Error(err)
				return
			}
		}
		a.BeginMessage(0)
		a.Write([]byte("after"))
	}()
	for _, want := range [][]byte{[]byte("before"), long, {}, []byte("after")} {
		m, err := b.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m, want) {
			t.Fatalf("a message of %d bytes arrived as %d", len(want), len(m))
		}
	}
}

// writeCounter is a transport that records the length of each write.
type writeCounter struct {
	net.Conn
	mu     sync.Mutex
	writes []int
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *writeCounter) take() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes
	c.writes = nil
	return w
}

// TestBegunMessageHeadGoesWithItsFirstPart: a message begun is not
// written until its first part comes, which carries its length and
// header in the same write: over UDX a write of its own would be a packet
// of 4 bytes, and an ack, a message. A message begun empty is written at
// once.
func TestBegunMessageHeadGoesWithItsFirstPart(t *testing.T) {
	a, b := tcpPair(t)
	wa := &writeCounter{Conn: a}
	sa, sb := streamsOver(t, wa, b, 0)
	wa.take()
	if err := sa.BeginMessage(5000); err != nil {
		t.Fatal(err)
	}
	if w := wa.take(); len(w) != 0 {
		t.Fatalf("a message begun wrote %v before its first part", w)
	}
	sa.Write(make([]byte, 3000))
	sa.Write(make([]byte, 2000))
	if w := wa.take(); !slices.Equal(w, []int{4 + 3000, 2000 + ABytes - 1}) {
		t.Fatalf("a message of 5000 bytes in parts of 3000 and 2000 went in writes of %v", w)
	}
	if err := sa.BeginMessage(0); err != nil {
		t.Fatal(err)
	}
	if w := wa.take(); !slices.Equal(w, []int{4 + ABytes - 1}) {
		t.Fatalf("an empty message begun went in writes of %v", w)
	}
	for _, n := range []int{5000, 0} {
		m, err := sb.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m, make([]byte, n)) {
			t.Fatalf("a message of %d bytes arrived as %d", n, len(m))
		}
	}
}

// TestWriteIsOneMessage: each Write is one message at the other end, as
// through the JS SecretStream, however long, up to the longest a message
// can be; a longer one arrives as the longest and the rest.
func TestWriteIsOneMessage(t *testing.T) {
	a, b := streamPair(t, 0)
	sizes := []int{5, 100 << 10, 1 << 20, 64<<10 + 1, MaxMessageSize + 5}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for _, n := range sizes {
			if k, err := a.Write(bytes.Repeat([]byte{byte(n)}, n)); err != nil || k != n {
				t.Errorf("write of %d bytes: %d, %v", n, k, err)
				return
			}
		}
	}()
	for _, want := range []int{5, 100 << 10, 1 << 20, 64<<10 + 1, MaxMessageSize, 5} {
		m, err := b.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != want {
			t.Fatalf("a message of %d bytes arrived, want %d", len(m), want)
		}
	}
	<-wrote
	if cap(a.wbuf) > bufferSize(keptWrite) {
		t.Fatalf("the stream keeps a sealing buffer of %d bytes after long writes", cap(a.wbuf))
	}
}

// TestAdmitMessages: the admit function learns each message's length
// before its body is read, and a refusal ends reading with its error
// though the body never comes.
func TestAdmitMessages(t *testing.T) {
	a, b := streamPair(t, 0)
	errRefused := errors.New("refused")
	var lengths []int
	b.AdmitMessages(func(n int) error {
		lengths = append(lengths, n)
		if n > 1000 {
			return errRefused
		}
		return nil
	})
	for _, n := range []int{5, 1000} {
		if err := a.WriteMessage(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	// A frame's length alone, declaring a message of 1 MiB.
	body := 1<<20 + ABytes
	if _, err := a.raw.Write([]byte{byte(body), byte(body >> 8), byte(body >> 16)}); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		for _, want := range []int{5, 1000} {
			if m, err := b.ReadMessage(); err != nil || len(m) != want {
				got <- fmt.Errorf("read %d bytes, %v; want %d", len(m), err, want)
				return
			}
		}
		_, err := b.ReadMessage()
		got <- err
	}()
	select {
	case err := <-got:
		if !errors.Is(err, errRefused) {
			t.Fatalf("the declared message was read as %v, want the refusal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refusal waited for a body that never comes")
	}
	if _, err := b.ReadMessage(); !errors.Is(err, errRefused) {
		t.Fatalf("a read after the refusal: %v", err)
	}
	if want := []int{5, 1000, 1 << 20}; !slices.Equal(lengths, want) {
		t.Fatalf("admit saw %v, want %v", lengths, want)
	}
}

func TestStreamCopyAndEOF(t *testing.T) {
	a, b := streamPair(t, 0)
	data := make([]byte, 3<<20+7)
	rand.Read(data)
	go func() {
		a.Write(data)
		a.CloseWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("stream corrupted")
	}
}

// TestReadChunkRoom: the room in front of each chunk may be overwritten
// without harm to any byte still to come, and the chunks join into what
// was written, split at messages and at max.
func TestReadChunkRoom(t *testing.T) {
	a, b := streamPair(t, 0)
	var data []byte
	for _, n := range []int{1, 100, 5000, 70000, 3, 1 << 18} {
		p := make([]byte, n)
		rand.Read(p)
		data = append(data, p...)
	}
	go func() {
		a.Write(data)
		a.CloseWrite()
	}()
	var got []byte
	for i := 0; ; i++ {
		room := i % (MaxChunkRoom + 1)
		c, err := b.ReadChunk(4096+i, room)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(c) < room || len(c)-room > 4096+i {
			t.Fatalf("chunk of %d bytes with %d of room, at most %d asked", len(c), room, 4096+i)
		}
		got = append(got, c[room:]...)
		for j := range c[:room] {
			c[j] = 0xee
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
	if _, err := b.ReadChunk(1, MaxChunkRoom+1); err == nil {
		t.Fatal("more room than there is was granted")
	}
}

func TestKeepAliveIsFiltered(t *testing.T) {
	a, b := streamPair(t, 20*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if err := a.WriteMessage([]byte("after idle")); err != nil {
		t.Fatal(err)
	}
	m, err := b.ReadMessage()
	if err != nil || string(m) != "after idle" {
		t.Fatalf("got %q, %v", m, err)
	}
	a.Close()
	b.Close()
}

func TestTamperedMessageFails(t *testing.T) {
	ra, rb := tcpPair(t)
	k := Keys{Hash: [64]byte{1}}
	k.Tx[0], k.Rx[0] = 1, 2
	k2 := Keys{Hash: k.Hash, Tx: k.Rx, Rx: k.Tx}
	go func() {
		s, _ := New(ra, true, Config{Keys: &k})
		s.WriteMessage([]byte("hello"))
	}()
	// Flip a ciphertext bit in flight.
	proxyIn, proxyOut := net.Pipe()
	go func() {
		buf := make([]byte, 3+56+3+1+5+16)
		io.ReadFull(rb, buf)
		buf[len(buf)-20] ^= 1
		proxyIn.Write(buf)
	}()
	s, err := New(struct {
		io.Reader
		io.Writer
		io.Closer
	}{proxyOut, io.Discard, proxyOut}, false, Config{Keys: &k2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadMessage(); err != ErrDecrypt {
		t.Fatalf("tampered message: %v", err)
	}
}

func TestRekeyMatchesCounterWrap(t *testing.T) {
	// A TagRekey message and a counter wrap both move both sides to the same
	// new key.
	var key [KeySize]byte
	var hdr [HeaderSize]byte
	key[0], hdr[0] = 9, 7
	var tx, rx sodiumState
	tx.init(&key, &hdr)
	rx.init(&key, &hdr)
	buf := make([]byte, bufferSize(5))
	for i, tag := range []byte{TagMessage, TagRekey, TagMessage} {
		tx.seal(buf, []byte("hello"), tag)
		got, err := rx.open(buf, 5)
		if err != nil || got != tag || string(buf[msgOffset:msgOffset+5]) != "hello" {
			t.Fatalf("message %d: tag %d err %v", i, got, err)
		}
	}
	if tx.key != rx.key || tx.key == key {
		t.Fatal("rekey did not happen on both sides")
	}
}

// fullConn is a transport that can wait for a whole read, as a UDX
// stream can; it counts the reads that asked it to.
type fullConn struct {
	net.Conn
	fulls int
}

func (c *fullConn) ReadFull(p []byte) (int, error) {
	c.fulls++
	return io.ReadFull(c.Conn, p)
}

// TestBodyReadWhole: over a transport that can wait for a whole read, a
// message body beyond what the stream had buffered is asked of it in one
// ReadFull, and messages of every size come through intact.
func TestBodyReadWhole(t *testing.T) {
	a, b := tcpPair(t)
	fb := &fullConn{Conn: b}
	sa, sb := streamsOver(t, a, fb, 0)
	// The first large message grows the read buffer; the ones after it
	// are read into it.
	sizes := []int{1, 1000, 65536, 65536, 32768, 10, 200000, 200000}
	go func() {
		for i, n := range sizes {
			if err := sa.WriteMessage(bytes.Repeat([]byte{byte(i)}, n)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	fulls := 0
	for i, n := range sizes {
		m, err := sb.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m, bytes.Repeat([]byte{byte(i)}, n)) {
			t.Fatalf("message %d of %d bytes corrupted", i, n)
		}
		if i > 0 && n > readBufferSize && sizes[i-1] >= n && fb.fulls == fulls {
			t.Fatalf("message %d's %d bytes read without ReadFull", i, n)
		}
		fulls = fb.fulls
	}
}
