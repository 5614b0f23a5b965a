package blindrelay

import (
	"net/netip"
	"sync"

	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/udx"
)

// Server pairs the streams of the sessions it accepted, by token.
type Server struct {
	u *udx.UDX

	mu      sync.Mutex
	pending map[[32]byte]*pairing
}

// pairing is a token one side or both asked for: links[1] is the
// initiator's.
type pairing struct {
	links [2]*link
}

type link struct {
	s        *Session
	remoteID uint64
	stream   *udx.Stream
}

// NewServer returns a relay whose streams live in u, the udx instance of
// the node that accepts the sessions' connections.
func NewServer(u *udx.UDX) *Server {
	return &Server{u: u, pending: map[[32]byte]*pairing{}}
}

// Session is one peer's connection to the relay.
type Session struct {
	srv *Server
	ch  *protomux.Channel

	mu      sync.Mutex
	tokens  map[[32]byte]bool // asked and not yet paired
	streams []*udx.Stream     // relayed, closed with the session
	closed  bool
}

// Accept serves the blind-relay channel on mux, which the caller runs; id
// is the peer's public key on the connection. The session ends, and its
// relayed streams with it, when the channel closes.
func (s *Server) Accept(mux *protomux.Mux, id []byte) *Session {
	ss := &Session{srv: s, tokens: map[[32]byte]bool{}}
	ss.ch = mux.CreateChannel(Protocol, id, protomux.Handlers{
		OnMessage: ss.onMessage,
		OnClose:   func(bool) { ss.onClose() },
	})
	ss.ch.Open(nil)
	return ss
}

func (ss *Session) onMessage(typ uint64, payload []byte) {
	switch typ {
	case typePair:
		var m Pair
		if m.Decode(payload) == nil {
			ss.srv.pair(ss, &m)
		}
	case typeUnpair:
		var m Unpair
		if m.Decode(payload) == nil {
			ss.srv.unpair(ss, m.Token)
		}
	}
}

func (s *Server) pair(ss *Session, m *Pair) {
	side := 0
	if m.IsInitiator {
		side = 1
	}
	s.mu.Lock()
	p := s.pending[m.Token]
	if p == nil {
		p = &pairing{}
		s.pending[m.Token] = p
	}
	if p.links[side] != nil {
		s.mu.Unlock()
		return
	}
	p.links[side] = &link{s: ss, remoteID: m.ID}
	if p.links[1-side] == nil {
		s.mu.Unlock()
		ss.mu.Lock()
		ss.tokens[m.Token] = true
		ss.mu.Unlock()
		return
	}
	delete(s.pending, m.Token)
	s.mu.Unlock()

	for _, l := range p.links {
		st, err := s.u.NewStream(s.u.RandomID())
		if err != nil {
			for _, o := range p.links {
				if o.stream != nil {
					o.stream.Close()
				}
			}
			return
		}
		// The peer's first packet says where it is.
		st.SetFirewall(func(sock *udx.Socket, from netip.AddrPort) bool {
			st.Connect(sock, uint32(l.remoteID), from)
			return true
		})
		l.stream = st
	}
	p.links[0].stream.RelayTo(p.links[1].stream)
	p.links[1].stream.RelayTo(p.links[0].stream)
	for i, l := range p.links {
		l.s.mu.Lock()
		delete(l.s.tokens, m.Token)
		closed := l.s.closed
		l.s.streams = append(l.s.streams, l.stream)
		l.s.mu.Unlock()
		if closed {
			l.stream.Close()
			continue
		}
		l.s.ch.Send(typePair, (&Pair{IsInitiator: i == 1, Token: m.Token, ID: uint64(l.stream.ID())}).Encode(nil))
	}
}

func (s *Server) unpair(ss *Session, token [32]byte) {
	s.mu.Lock()
	p := s.pending[token]
	if p != nil {
		for _, l := range p.links {
			if l != nil && l.s == ss {
				delete(s.pending, token)
			}
		}
	}
	s.mu.Unlock()
	ss.mu.Lock()
	delete(ss.tokens, token)
	ss.mu.Unlock()
}

func (ss *Session) onClose() {
	ss.mu.Lock()
	ss.closed = true
	tokens, streams := ss.tokens, ss.streams
	ss.tokens, ss.streams = nil, nil
	ss.mu.Unlock()
	for t := range tokens {
		ss.srv.unpair(ss, t)
	}
	for _, st := range streams {
		st.Close()
	}
}
