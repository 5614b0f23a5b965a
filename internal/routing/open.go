package routing

import (
	"fmt"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/relay"
)

// OpenRequest asks a worker to take a session: the session's id, the edge
// that holds the client, and the client's handshake.
type OpenRequest struct {
	Session   string
	Edge      string
	Handshake relay.Handshake
}

// Encode returns the request's encoding.
func (o *OpenRequest) Encode() []byte {
	b := compact.AppendString(compact.AppendString(nil, o.Session), o.Edge)
	return o.Handshake.AppendPayload(b)
}

// DecodeOpenRequest decodes an OpenRequest; ids must be subject tokens.
func DecodeOpenRequest(p []byte) (OpenRequest, error) {
	r := compact.NewReader(p)
	o := OpenRequest{Session: r.String(), Edge: r.String()}
	if err := r.Err(); err != nil {
		return OpenRequest{}, fmt.Errorf("%w: open: %v", ErrBadFrame, err)
	}
	if !ValidID(o.Session) || !ValidID(o.Edge) {
		return OpenRequest{}, fmt.Errorf("%w: open: bad id", ErrBadFrame)
	}
	m, err := relay.Decode(relay.TypeHandshake, r.Rest())
	if err != nil {
		return OpenRequest{}, fmt.Errorf("%w: open: %v", ErrBadFrame, err)
	}
	o.Handshake = *m.(*relay.Handshake)
	return o, nil
}

// ValidID reports whether s can name a node or session: 1 to 64 of
// a-z, 0-9 and '-', so that it is always one NATS subject token.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}
