package secretstream

import (
	"bytes"
	"io"
	"testing"
)

// rawBuffer is a raw stream that reads from r and discards writes.
type rawBuffer struct{ r io.Reader }

func (b rawBuffer) Read(p []byte) (int, error) {
	if b.r == nil {
		return 0, io.EOF
	}
	return b.r.Read(p)
}
func (rawBuffer) Write(p []byte) (int, error) { return len(p), nil }
func (rawBuffer) Close() error                { return nil }

// recorder is a raw stream that records writes.
type recorder struct{ bytes.Buffer }

func (*recorder) Read([]byte) (int, error) { return 0, io.EOF }
func (*recorder) Close() error             { return nil }

// FuzzReadMessage feeds arbitrary bytes to a stream after the handshake: a
// header and messages, valid or not. It may error, never panic; what a
// matching writer sends seeds it.
func FuzzReadMessage(f *testing.F) {
	keys := Keys{Hash: [64]byte{1, 2, 3}}
	keys.Tx[0], keys.Rx[0] = 1, 2
	peer := Keys{Hash: keys.Hash, Tx: keys.Rx, Rx: keys.Tx}
	var seed recorder
	w, _ := New(&seed, true, Config{Keys: &peer})
	w.WriteMessage([]byte("hello"))
	w.WriteMessage(nil)
	f.Add(seed.Bytes())
	f.Add(seed.Bytes()[:70])
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := New(rawBuffer{bytes.NewReader(data)}, false, Config{Keys: &keys, MaxMessageSize: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := r.ReadMessage(); err != nil {
				return
			}
		}
	})
}
