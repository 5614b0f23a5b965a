package relay

import (
	"bytes"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/protomux"
)

// Lender is a transport that can lend the buffer a message was read into
// instead of copying it out, for a reader that is done with the message
// before it reads the next. WebSocketFramed is one.
type Lender interface {
	ReadLent() (*[]byte, error)
	Return(*[]byte)
}

// ReceiveLent reads one frame through a lent buffer and hands it to mux.
// A frame of stream data is handled in place: the relay's and the
// client's handlers are done with its bytes when they return. Anything
// else is copied first, since handlers and the mux may keep parts of it.
func ReceiveLent(mux *protomux.Mux, l Lender) error {
	bp, err := l.ReadLent()
	if err != nil {
		return err
	}
	frame := *bp
	if !isStreamData(frame) {
		frame = bytes.Clone(frame)
		l.Return(bp)
		return mux.Receive(frame)
	}
	err = mux.Receive(frame)
	l.Return(bp)
	return err
}

// isStreamData reports whether a frame is a Data message on a channel
// (not a batch, which may hold anything).
func isStreamData(frame []byte) bool {
	r := compact.NewReader(frame)
	ch, typ := r.Uint(), r.Uint()
	return r.Err() == nil && ch != 0 && typ == uint64(TypeData)
}
