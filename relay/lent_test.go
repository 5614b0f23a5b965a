package relay

import (
	"testing"

	"github.com/dhtrelay/dht-relay/compact"
)

// TestIsStreamData: only a Data message on a channel is handled in the
// buffer it was read into; a batch on the control channel, any other
// message and a frame that does not decode are copied first.
func TestIsStreamData(t *testing.T) {
	frame := func(ch, typ uint64, payload []byte) []byte {
		return append(compact.AppendUint(compact.AppendUint(nil, ch), typ), payload...)
	}
	data := (&Data{Alias: 7, Buffers: MakeBuffers([]byte("bytes"))}).AppendPayload(nil)
	for _, c := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"data", frame(1, uint64(TypeData), data), true},
		{"data on a later channel", frame(300, uint64(TypeData), data), true},
		{"batch", frame(0, 0, frame(1, uint64(TypeData), data)), false},
		{"control with data's number", frame(0, uint64(TypeData), data), false},
		{"another message", frame(1, uint64(TypeConnect), nil), false},
		{"empty", nil, false},
		{"truncated", []byte{0xfd, 1}, false},
	} {
		if got := isStreamData(c.frame); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}
