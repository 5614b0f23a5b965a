package protomux

import (
	"io"
	"testing"
)

// frames replays a fixed list of frames and then ends.
type frames struct{ fs [][]byte }

func (f *frames) ReadMessage() ([]byte, error) {
	if len(f.fs) == 0 {
		return nil, io.EOF
	}
	m := f.fs[0]
	f.fs = f.fs[1:]
	return m, nil
}

func (f *frames) WriteMessage([]byte) error { return nil }

// FuzzRun feeds arbitrary frames (split from the input at 0xaa bytes) to a
// Mux with one channel open and one pairing handler; it may fail the
// stream, never panic.
func FuzzRun(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 'p', 0, 0xaa, 1, 2, 'x', 0xaa, 0, 0, 1, 2, 3, 'a', 0, 2, 5, 0xaa, 0, 3, 1})
	f.Add([]byte{0, 2, 1, 0xaa, 0, 1, 2, 1, 'q', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var fs [][]byte
		start := 0
		for i, b := range data {
			if b == 0xaa {
				fs = append(fs, data[start:i])
				start = i + 1
			}
		}
		fs = append(fs, data[start:])
		m := New(&frames{fs})
		c := m.CreateChannel("p", nil, Handlers{OnMessage: func(uint64, []byte) {}})
		c.Open(nil)
		m.Pair("q", nil, func(id []byte) { m.CreateChannel("q", id, Handlers{}).Open(nil) })
		m.Run()
	})
}
