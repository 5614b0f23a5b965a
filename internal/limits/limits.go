// Package limits holds every per-client bound of the relay in one place,
// with the defaults an unconfigured relay uses.
package limits

import (
	"errors"
	"fmt"
	"time"
)

// Limits bound what one edge, session and stream may hold.
type Limits struct {
	// SessionsPerEdge caps concurrent client sessions on one edge.
	SessionsPerEdge int
	// SessionsPerAddress caps the sessions open from one client address
	// (an IPv6 client's /64); SessionsPerSubnet those from one IPv4 /24 or
	// IPv6 /48. Sessions count from the connection, handshake or not.
	SessionsPerAddress int
	SessionsPerSubnet  int
	// SessionRate is how many new sessions a second one address may open,
	// with bursts of SessionBurst.
	SessionRate  int
	SessionBurst int
	// StreamsPerSession caps a session's open and opening streams.
	StreamsPerSession int
	// ServersPerSession caps a session's servers.
	ServersPerSession int
	// QueriesPerSession caps a session's running lookups, announces and
	// unannounces.
	QueriesPerSession int
	// DHTRequestRate paces the DHT requests one session's work makes the
	// worker's node send, in requests a second, with a burst of twice as
	// many: a session announcing and looking up a few topics and
	// connecting to a few dozen peers stays within the burst, while one
	// that floods cannot keep the DHT it shares with every other session
	// busy.
	DHTRequestRate int
	// ReadBudget bounds the bytes one edge holds in client messages being
	// read, all sessions together: a message that does not fit ends its
	// session, and while nine tenths of it is taken new sessions are
	// refused.
	ReadBudget int
	// WorkerBudget bounds the bytes one worker's streams hold: what peers
	// sent and clients have not taken, what clients sent and peers have
	// not acked. While nine tenths of it is held the worker refuses new
	// sessions and new streams.
	WorkerBudget int
	// MaxFrame is the largest frame a client may send, refused before it
	// is buffered. The JS client puts everything an application wrote in
	// one tick into one data message, so this is also the largest single
	// write a JS application can make; the default is the JS relay's (its
	// WebSocket library's 100 MiB), and the read budget bounds how many
	// such frames the edge holds at once.
	MaxFrame int
	// Caps are what an operator may impose on relayed data; each is off
	// at zero, as it is by default.
	Caps Caps
	// ControlQueue caps the messages other than stream data queued toward
	// one client; a client that lets more pile up is disconnected.
	ControlQueue int
	// HandshakeTimeout bounds the wait for a client's first message and
	// for each answer the relay needs from a client (firewall verdicts,
	// Noise messages, signatures).
	HandshakeTimeout time.Duration
	// WriteTimeout is how long a write to a client that stopped reading
	// may block before the session is closed.
	WriteTimeout time.Duration
}

// Caps bound relayed data, as libp2p's circuit relay and TURN servers
// offer: zero is no cap.
type Caps struct {
	// SessionByteRate paces one session's relayed bytes, both directions
	// and all its streams together, in bytes a second.
	SessionByteRate int
	// StreamBytes ends a stream once it relayed this many bytes, both
	// directions together.
	StreamBytes int64
	// StreamDuration ends a stream this long after it opened.
	StreamDuration time.Duration
}

// Default returns the defaults: room for many clients, each with enough
// streams for a Hyperswarm.
func Default() Limits {
	return Limits{
		SessionsPerEdge:    20000,
		SessionsPerAddress: 128,
		SessionsPerSubnet:  1024,
		SessionRate:        4,
		SessionBurst:       64,
		StreamsPerSession:  64,
		ServersPerSession:  8,
		QueriesPerSession:  32,
		DHTRequestRate:     256,
		ReadBudget:         256 << 20,
		WorkerBudget:       512 << 20,
		MaxFrame:           100 << 20,
		ControlQueue:       1024,
		HandshakeTimeout:   10 * time.Second,
		WriteTimeout:       30 * time.Second,
	}
}

// ErrInvalid means a limit is out of range.
var ErrInvalid = errors.New("limits: invalid")

// Validate checks that every limit is positive.
func (l Limits) Validate() error {
	for name, v := range map[string]int64{
		"sessions per edge": int64(l.SessionsPerEdge), "sessions per address": int64(l.SessionsPerAddress),
		"sessions per subnet": int64(l.SessionsPerSubnet), "session rate": int64(l.SessionRate), "session burst": int64(l.SessionBurst), "streams per session": int64(l.StreamsPerSession),
		"servers per session": int64(l.ServersPerSession), "queries per session": int64(l.QueriesPerSession),
		"DHT requests a second per session": int64(l.DHTRequestRate),
		"max frame":                         int64(l.MaxFrame), "read budget": int64(l.ReadBudget), "worker budget": int64(l.WorkerBudget), "control queue": int64(l.ControlQueue),
		"handshake timeout": int64(l.HandshakeTimeout), "write timeout": int64(l.WriteTimeout),
	} {
		if v <= 0 {
			return fmt.Errorf("%w: %s must be positive", ErrInvalid, name)
		}
	}
	c := l.Caps
	if c.SessionByteRate < 0 || c.StreamBytes < 0 || c.StreamDuration < 0 {
		return fmt.Errorf("%w: a cap must be zero (off) or positive", ErrInvalid)
	}
	return nil
}
