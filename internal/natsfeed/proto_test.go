package natsfeed

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestReaderOperations reads each server operation and refuses what the
// protocol does not allow.
func TestReaderOperations(t *testing.T) {
	in := "INFO {\"headers\":true}\r\nPING\r\npong\r\n+OK\r\n-ERR 'Slow Consumer'\r\n" +
		"MSG a.b 1 5\r\nhello\r\n" +
		"MSG a.c 1 reply.x 2\r\nhi\r\n" +
		"HMSG a.d 1 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nok\r\n"
	r := newReader(bytes.NewBufferString(in), newPool())
	want := []op{opInfo, opPing, opPong, opOK, opErr, opMsg, opMsg, opMsg}
	var msgs []Msg
	for i, w := range want {
		o, m, arg, err := r.next()
		if err != nil || o != w {
			t.Fatalf("operation %d: %v %v, want %v", i, o, err, w)
		}
		if o == opErr && string(arg) != "Slow Consumer" {
			t.Fatalf("-ERR text %q", arg)
		}
		if o == opMsg {
			m.Subject = bytes.Clone(m.Subject)
			msgs = append(msgs, m)
		}
	}
	if string(msgs[0].Subject) != "a.b" || string(msgs[0].Data) != "hello" ||
		string(msgs[1].Subject) != "a.c" || string(msgs[1].Data) != "hi" ||
		string(msgs[2].Data) != "ok" || msgs[2].Header.Get("K") != "v" {
		t.Fatalf("messages %+v", msgs)
	}
	if _, _, _, err := r.next(); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	for _, bad := range []string{
		"MSG a 1\r\n", "MSG a 1 x y 3\r\nabc\r\n", "MSG a 1 -1\r\n", "MSG a 1 3\r\nabcd\r\n",
		"HMSG a 1 5 3\r\nabc\r\n", "HMSG a 1 3 3\r\nabc\r\n", "NOPE\r\n", "MSG a 1 99999999999\r\n",
	} {
		r := newReader(bytes.NewBufferString(bad), newPool())
		if _, _, _, err := r.next(); !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestReaderPastFills reads a line and payloads longer than one read into
// the line buffer, whole and in order.
func TestReaderPastFills(t *testing.T) {
	info := "INFO {\"x\":\"" + strings.Repeat("i", 3*fillSize) + "\"}"
	big := bytes.Repeat([]byte("0123456789abcdef"), (MaxPooled-100)/16)
	in := info + "\r\nMSG a 1 " + strconv.Itoa(len(big)) + "\r\n" + string(big) + "\r\nMSG b 1 2\r\nhi\r\n"
	r := newReader(bytes.NewBufferString(in), newPool())
	if o, _, arg, err := r.next(); err != nil || o != opInfo || len(arg) != len(info)-len("INFO ") {
		t.Fatalf("INFO: %v %v, %d bytes", o, err, len(arg))
	}
	o, m, _, err := r.next()
	if err != nil || o != opMsg || !bytes.Equal(m.Data, big) || m.Lease.buf == nil {
		t.Fatalf("large message: %v %v, %d bytes, pooled %v", o, err, len(m.Data), m.Lease.buf != nil)
	}
	m.Lease.Release()
	if o, m, _, err := r.next(); err != nil || o != opMsg || string(m.Data) != "hi" {
		t.Fatalf("the message after: %v %v %q", o, err, m.Data)
	}
}

// FuzzReader: any bytes from a server read as operations or an error,
// never a panic, and a message's data never exceeds what its line said.
func FuzzReader(f *testing.F) {
	f.Add([]byte("INFO {}\r\nMSG a 1 3\r\nabc\r\nPING\r\n"))
	f.Add([]byte("HMSG a 1 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nok\r\n"))
	f.Add([]byte("HMSG a 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newReader(bytes.NewReader(in), newPool())
		for range 64 {
			o, m, _, err := r.next()
			if err != nil {
				return
			}
			if o == opMsg {
				if len(m.Data) > len(in) {
					t.Fatalf("%d bytes of data from %d of input", len(m.Data), len(in))
				}
				m.Lease.Release()
			}
		}
	})
}

// TestLeaseReleasesOnce: of a lease's copies, released at once from many
// goroutines, exactly one gives the buffer back; a copy kept past that
// cannot give back the buffer once it is lent for another message.
func TestLeaseReleasesOnce(t *testing.T) {
	pool := newPool()
	l, _ := lend(pool)
	var wg sync.WaitGroup
	var released atomic.Int32
	for range 16 {
		c := l // a copy, as frames carry it
		wg.Go(func() {
			if c.Release() {
				released.Add(1)
			}
		})
	}
	wg.Wait()
	if n := released.Load(); n != 1 {
		t.Fatalf("%d of 16 copies gave the buffer back", n)
	}
	// The buffer is lent again; the stale copy must not take it back.
	again, b := lend(pool)
	if again.buf != l.buf {
		t.Skip("the pool lent another buffer; nothing to check") // a collection emptied it
	}
	if l.Release() {
		t.Fatal("a stale copy gave back a buffer lent to another message")
	}
	b[0] = 1 // still the second lending's
	if !again.Release() || again.Release() {
		t.Fatal("the current lending could not give its buffer back once")
	}
	if (Lease{}).Release() {
		t.Fatal("the zero lease released something")
	}
}
