package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is a connected pair of loopback TCP connections.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestGatherWriterWritesEveryPart: parts far beyond the socket's buffer,
// more of them than one writev takes, read slowly on the other end, come
// out whole and in order: a write that fills the buffer waits and goes on
// from where it stopped, within a part.
func TestGatherWriterWritesEveryPart(t *testing.T) {
	a, b := tcpPair(t)
	g := newGatherWriter(a)
	if g == nil {
		t.Fatal("no gather writer for a TCP connection")
	}
	var parts [][]byte
	var want bytes.Buffer
	for i := range 3000 { // past maxIovecs
		p := make([]byte, 1+i%7*1000)
		rand.Read(p)
		parts = append(parts, p, nil) // empty parts are skipped
		want.Write(p)
	}
	big := make([]byte, 12<<20) // many times the socket's buffer
	rand.Read(big)
	parts = append(parts, big)
	want.Write(big)
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		chunk := make([]byte, 100<<10)
		for buf.Len() < want.Len() {
			time.Sleep(time.Millisecond) // slower than the writer
			n, err := b.Read(chunk)
			buf.Write(chunk[:n])
			if err != nil {
				break
			}
		}
		got <- buf.Bytes()
	}()
	if err := g.write(parts); err != nil {
		t.Fatal(err)
	}
	if r := <-got; !bytes.Equal(r, want.Bytes()) {
		t.Fatalf("read %d bytes, not the %d written", len(r), want.Len())
	}
}

// TestGatherWriterKeepsTheDeadline: a write to a peer that reads nothing
// fails at the connection's write deadline, as the net package's would.
func TestGatherWriterKeepsTheDeadline(t *testing.T) {
	a, _ := tcpPair(t)
	g := newGatherWriter(a)
	a.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- g.write([][]byte{make([]byte, 64<<20)}) }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write to a peer that reads nothing: %v, want the deadline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the write outlived its deadline")
	}
}

// TestGatherWriterSaysTheConnectionsError: a write to a closed connection
// fails with the net package's error, not as a raw one.
func TestGatherWriterSaysTheConnectionsError(t *testing.T) {
	a, _ := tcpPair(t)
	g := newGatherWriter(a)
	a.Close()
	if err := g.write([][]byte{[]byte("x")}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
	if newGatherWriter(struct{ net.Conn }{a}) != nil {
		t.Fatal("a gather writer for a connection that is no socket")
	}
}
