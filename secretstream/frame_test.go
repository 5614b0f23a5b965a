package secretstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestFrameBufferGrowsAsBytesArrive: a frame declaring 16 MiB of which
// three bytes come costs a small buffer, not the declared length; a frame
// that does come whole is read whole, whatever its size.
func TestFrameBufferGrowsAsBytesArrive(t *testing.T) {
	declared := []byte{0xff, 0xff, 0xff, 1, 2, 3}
	s := &Stream{br: bufio.NewReader(bytes.NewReader(declared))}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := s.readFrame(1<<24, 0, 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut frame: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("three bytes of a frame declaring 16 MiB allocated %d bytes", grew)
	}

	for _, n := range []int{0, 1, readGrowStep - 1, readGrowStep + 1, 5*readGrowStep + 7} {
		body := bytes.Repeat([]byte{7}, n)
		frame := append([]byte{byte(n), byte(n >> 8), byte(n >> 16)}, body...)
		// One byte at a time, so that every growth step is taken.
		s := &Stream{br: bufio.NewReader(&oneByte{bytes.NewReader(frame)})}
		got, err := s.readFrame(1<<24, 5, 9)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%d bytes: %v, %d bytes read back", n, err, len(got))
		}
		if cap(s.rbuf) < 5+n+9 {
			t.Fatalf("%d bytes: buffer of %d leaves no room behind", n, cap(s.rbuf))
		}
	}
}

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

// TestLargeFrameBufferIsNotKept: after a large message, the next small one
// gives the large buffer up.
func TestLargeFrameBufferIsNotKept(t *testing.T) {
	frame := func(n int) []byte {
		return append([]byte{byte(n), byte(n >> 8), byte(n >> 16)}, make([]byte, n)...)
	}
	s := &Stream{br: bufio.NewReader(bytes.NewReader(append(frame(1<<20), frame(100)...)))}
	if _, err := s.readFrame(1<<24, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.readFrame(1<<24, 0, 0); err != nil {
		t.Fatal(err)
	}
	if cap(s.rbuf) > readGrowStep {
		t.Fatalf("a buffer of %d bytes kept for 100-byte messages", cap(s.rbuf))
	}
}
