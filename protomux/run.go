package protomux

import (
	"fmt"

	"github.com/dhtrelay/dht-relay/compact"
)

// Run reads frames and dispatches them until the stream fails or a frame
// breaks the protocol; then every channel closes and Run returns the error.
func (m *Mux) Run() error {
	for {
		frame, err := m.f.ReadMessage()
		if err == nil {
			err = m.Receive(frame)
		}
		if err != nil {
			return m.End(err)
		}
	}
}

// Receive handles one frame read from the transport, for a caller that
// reads the transport itself instead of calling Run. An error means the
// stream is broken: the caller passes it to End.
func (m *Mux) Receive(frame []byte) error {
	if len(frame) == 0 {
		return nil
	}
	r := compact.NewReader(frame)
	ch := r.Uint()
	return m.dispatch(ch, r)
}

// End closes the channels still open, as the end of the stream, and
// returns err; Run calls it when reading fails.
func (m *Mux) End(err error) error {
	m.mu.Lock()
	m.done = true
	var open []*Channel
	for _, c := range m.local {
		if c != nil && !c.closed {
			open = append(open, c)
		}
	}
	for _, s := range m.remote {
		if s != nil && s.ch != nil && !s.ch.closed && s.ch.localID == 0 {
			open = append(open, s.ch)
		}
	}
	for _, c := range open {
		m.closeLocked(c)
	}
	m.mu.Unlock()
	for _, c := range open {
		if c.h.OnClose != nil {
			c.h.OnClose(true)
		}
	}
	return err
}

// dispatch handles one "type, payload" for the remote channel id ch.
func (m *Mux) dispatch(ch uint64, r *compact.Reader) error {
	typ := r.Uint()
	if err := r.Err(); err != nil {
		return fmt.Errorf("protomux: frame: %w", err)
	}
	if ch == 0 {
		return m.control(typ, r)
	}
	m.mu.Lock()
	var c *Channel
	if ch <= uint64(len(m.remote)) && m.remote[ch-1] != nil {
		c = m.remote[ch-1].ch
	}
	m.mu.Unlock()
	// Frames for closed or unknown channels are dropped, as protomux does:
	// they may have crossed a close.
	if c != nil && c.h.OnMessage != nil {
		c.h.OnMessage(typ, r.Rest())
	}
	return nil
}

func (m *Mux) control(typ uint64, r *compact.Reader) error {
	switch typ {
	case 0:
		return m.onBatch(r)
	case 1:
		return m.onOpen(r)
	case 2:
		return m.onReject(r)
	case 3:
		return m.onClose(r)
	}
	return nil
}

func (m *Mux) onBatch(r *compact.Reader) error {
	ch := r.Uint()
	for r.Err() == nil && r.Len() > 0 {
		n := r.Uint()
		if n == 0 {
			ch = r.Uint()
			continue
		}
		// protomux clamps an entry that claims more than the frame holds.
		entry := r.Fixed(int(min(n, uint64(r.Len()))))
		if err := m.dispatch(ch, compact.NewReader(entry)); err != nil {
			return err
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("protomux: batch: %w", err)
	}
	return nil
}

// maxRemoteIDs bounds the channel ids a peer may use. A peer reuses the
// ids of channels it closed (as JS protomux does), so its ids stay within
// what it holds open at once; one that opens channel after channel with
// the next id, each rejected, would otherwise grow the table of its ids
// for ever.
const maxRemoteIDs = 1 << 16

func (m *Mux) onOpen(r *compact.Reader) error {
	rid := r.Uint()
	protocol := r.String()
	id := r.Buffer()
	hs := append([]byte(nil), r.Rest()...)
	if err := r.Err(); err != nil {
		return fmt.Errorf("protomux: open: %w", err)
	}
	if len(id) == 0 {
		id = nil // optionalBuffer: empty is null
	}
	m.mu.Lock()
	if rid == 0 || rid > maxRemoteIDs || rid > uint64(len(m.remote))+1 || (rid <= uint64(len(m.remote)) && m.remote[rid-1] != nil) {
		m.mu.Unlock()
		return fmt.Errorf("%w: id %d", ErrInvalidOpen, rid)
	}
	if rid == uint64(len(m.remote))+1 {
		m.remote = append(m.remote, nil)
	}
	k := key(protocol, id)
	in := m.info(k)
	if len(in.outgoing) > 0 {
		lid := in.outgoing[0]
		in.outgoing = in.outgoing[1:]
		m.tidy(k, in)
		c := m.local[lid-1]
		if c == nil {
			// Closed before the answer came: the id is free now.
			m.free = append(m.free, lid-1)
			m.mu.Unlock()
			return nil
		}
		c.remoteID = rid
		c.opened = true
		m.remote[rid-1] = &remoteSlot{ch: c}
		m.mu.Unlock()
		if c.h.OnOpen != nil {
			c.h.OnOpen(hs)
		}
		return nil
	}
	m.remote[rid-1] = &remoteSlot{pendingHandshake: hs}
	in.incoming = append(in.incoming, rid)
	notify := m.pairs[k]
	if notify == nil {
		notify = m.pairs[key(protocol, nil)]
	}
	m.mu.Unlock()
	if notify != nil {
		notify(id)
	}
	m.mu.Lock()
	claimed := true
	for i, x := range in.incoming {
		if x == rid {
			in.incoming = append(in.incoming[:i], in.incoming[i+1:]...)
			m.tidy(k, in)
			m.remote[rid-1] = nil
			claimed = false
			break
		}
	}
	m.mu.Unlock()
	if !claimed {
		return m.writeControl(append([]byte{0, 2}, compact.AppendUint(nil, rid)...))
	}
	return nil
}

func (m *Mux) onReject(r *compact.Reader) error {
	lid := r.Uint()
	if err := r.Err(); err != nil {
		return fmt.Errorf("protomux: reject: %w", err)
	}
	m.mu.Lock()
	for k, in := range m.infos {
		for i, x := range in.outgoing {
			if x != lid {
				continue
			}
			in.outgoing = append(in.outgoing[:i], in.outgoing[i+1:]...)
			m.tidy(k, in)
			c := m.local[lid-1]
			m.free = append(m.free, lid-1)
			if c != nil {
				m.local[lid-1] = nil
				c.closed = true
			}
			m.mu.Unlock()
			if c != nil && c.h.OnClose != nil {
				c.h.OnClose(true)
			}
			return nil
		}
	}
	m.mu.Unlock()
	return fmt.Errorf("%w: id %d", ErrInvalidReject, lid)
}

func (m *Mux) onClose(r *compact.Reader) error {
	rid := r.Uint()
	if err := r.Err(); err != nil {
		return fmt.Errorf("protomux: close: %w", err)
	}
	m.mu.Lock()
	if rid == 0 || rid > uint64(len(m.remote)) || m.remote[rid-1] == nil || m.remote[rid-1].ch == nil {
		m.mu.Unlock()
		return nil
	}
	c := m.remote[rid-1].ch
	m.closeLocked(c)
	m.mu.Unlock()
	if c.h.OnClose != nil {
		c.h.OnClose(true)
	}
	return nil
}
