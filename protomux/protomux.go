// Package protomux multiplexes typed messages over channels on one framed
// stream, as the protomux npm package (3.x) does.
//
// A frame is "uint channel, uint type, payload", where channel is the
// sender's local id for the channel and type the message's index. Channel 0
// carries control frames: type 0 batch, 1 open (local id, protocol string,
// optional id buffer, handshake bytes), 2 reject (the rejected open's id),
// 3 close (local id). Channels pair when both sides open the same protocol
// and id. A batch is "uint channel" followed by length-prefixed "type,
// payload" entries, where a zero length switches to a new channel id.
// Local ids start at 1 and are reused after they are freed; a peer that
// opens an id more than one past its highest or one still in use breaks the
// stream, as it does in protomux.
package protomux

import (
	"encoding/hex"
	"errors"
	"sync"

	"github.com/dhtrelay/dht-relay/compact"
)

// MaxBatch is the size at which a corked batch is sent early, as protomux
// does at 8 MiB.
const MaxBatch = 8 << 20

var (
	// ErrChannelClosed is returned when sending on a closed channel.
	ErrChannelClosed = errors.New("protomux: channel closed")
	// ErrInvalidOpen means the remote opened an id it may not use.
	ErrInvalidOpen = errors.New("protomux: invalid open message")
	// ErrInvalidReject means the remote rejected a channel we did not open.
	ErrInvalidReject = errors.New("protomux: invalid reject message")
)

// Framed is a message-oriented stream, such as a SecretStream or a
// WebSocket: one frame per call. ReadMessage's result may be reused by the
// next call.
type Framed interface {
	ReadMessage() ([]byte, error)
	WriteMessage([]byte) error
}

// gatherWriter is a Framed that sends one message gathered from several
// buffers, so that SendVec's parts need not be copied together first.
type gatherWriter interface {
	WriteMessageVec(parts [][]byte) error
}

// Handlers receive a channel's events, on the goroutine running Mux.Run.
// The byte slices are valid only during the call.
type Handlers struct {
	// OnOpen runs when both sides have opened, with the remote handshake.
	OnOpen func(handshake []byte)
	// OnMessage runs for every message; types the caller does not know are
	// its to ignore.
	OnMessage func(typ uint64, payload []byte)
	// OnClose runs once when the channel closes; remote says who closed it
	// (a stream failure counts as remote).
	OnClose func(remote bool)
}

type info struct {
	outgoing []uint64 // local ids opened and not yet answered
	incoming []uint64 // remote ids opened and not yet claimed
}

// remoteSlot is what a remote id refers to: a channel, or, while a pairing
// handler decides, the open's handshake.
type remoteSlot struct {
	ch               *Channel
	pendingHandshake []byte
}

// Mux runs channels over one framed stream. Run reads; any goroutine may
// create channels and send.
type Mux struct {
	f Framed

	wmu    sync.Mutex // serialises writes and the batch
	wbuf   []byte
	parts  [][]byte // SendVec's message, header first
	corked int
	batch  []byte
	batchC uint64 // channel id of the batch's last entry

	mu     sync.Mutex
	local  []*Channel // by local id - 1
	free   []uint64
	remote []*remoteSlot    // by remote id - 1
	infos  map[string]*info // only while opens wait: nil for most of a mux's life
	pairs  map[string]func(id []byte)
	done   bool
}

// New returns a Mux over f; call Run to start reading.
func New(f Framed) *Mux {
	return &Mux{f: f}
}

func key(protocol string, id []byte) string { return protocol + "##" + hex.EncodeToString(id) }

func (m *Mux) info(k string) *info {
	i := m.infos[k]
	if i == nil {
		i = &info{}
		if m.infos == nil {
			m.infos = make(map[string]*info)
		}
		m.infos[k] = i
	}
	return i
}

// tidy forgets k's info once no open waits on it, and the table once it
// is empty. m.mu is held.
func (m *Mux) tidy(k string, in *info) {
	if len(in.outgoing) > 0 || len(in.incoming) > 0 {
		return
	}
	delete(m.infos, k)
	if len(m.infos) == 0 {
		m.infos = nil
	}
}

// Pair registers fn for remote opens of protocol and id that no local
// channel awaits; fn may claim the open by calling CreateChannel. An open
// nobody claims is rejected.
func (m *Mux) Pair(protocol string, id []byte, fn func(id []byte)) {
	m.mu.Lock()
	if m.pairs == nil {
		m.pairs = make(map[string]func([]byte))
	}
	m.pairs[key(protocol, id)] = fn
	m.mu.Unlock()
}

// Channel is one side of a protocol session.
type Channel struct {
	mux      *Mux
	protocol string
	id       []byte
	h        Handlers

	// guarded by mux.mu
	localID, remoteID uint64
	remoteHandshake   []byte
	opening, opened   bool
	closed            bool
}

// CreateChannel makes a channel for protocol and id. If the remote has
// already opened one, the channel pairs with it.
func (m *Mux) CreateChannel(protocol string, id []byte, h Handlers) *Channel {
	c := &Channel{mux: m, protocol: protocol, id: append([]byte(nil), id...), h: h}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		c.closed = true
		return c
	}
	k := key(protocol, id)
	if in := m.infos[k]; in != nil && len(in.incoming) > 0 {
		rid := in.incoming[0]
		in.incoming = in.incoming[1:]
		c.remoteID = rid
		c.remoteHandshake = m.remote[rid-1].pendingHandshake
		m.remote[rid-1].ch = c
		m.tidy(k, in)
	}
	return c
}

// Open sends the channel's open with handshake as its handshake bytes.
func (c *Channel) Open(handshake []byte) error {
	m := c.mux
	m.mu.Lock()
	if c.closed || c.opening {
		m.mu.Unlock()
		return ErrChannelClosed
	}
	c.opening = true
	var idx uint64
	if n := len(m.free); n > 0 {
		idx, m.free = m.free[n-1], m.free[:n-1]
	} else {
		m.local = append(m.local, nil)
		idx = uint64(len(m.local) - 1)
	}
	m.local[idx] = c
	c.localID = idx + 1
	fire := c.remoteID != 0
	if !fire {
		in := m.info(key(c.protocol, c.id))
		in.outgoing = append(in.outgoing, c.localID)
	} else {
		c.opened = true
	}
	hs := c.remoteHandshake
	c.remoteHandshake = nil
	m.mu.Unlock()

	b := append([]byte{0, 1}, compact.AppendUint(nil, c.localID)...)
	b = compact.AppendString(b, c.protocol)
	b = compact.AppendBuffer(b, c.id)
	b = append(b, handshake...)
	err := m.writeControl(b)
	if fire && c.h.OnOpen != nil {
		c.h.OnOpen(hs)
	}
	return err
}

// Send sends a message of type typ.
func (c *Channel) Send(typ uint64, payload []byte) error { return c.SendIn(typ, payload, 0) }

// SendIn sends b[room:] as a message of type typ. When the message's
// header fits in the room bytes in front, it is written there and the
// message goes out without being copied; b[:room] is overwritten or not.
func (c *Channel) SendIn(typ uint64, b []byte, room int) error {
	lid, err := c.sendID()
	if err != nil {
		return err
	}
	m := c.mux
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.sendIn(lid, typ, b, room)
}

// maxHeader is the longest message header: two compact uints (channel id
// and type) of at most 9 bytes.
const maxHeader = 18

// SendVec sends a message whose payload is parts end to end, gathered from
// them where the transport can, else copied together.
func (c *Channel) SendVec(typ uint64, parts [][]byte) error {
	lid, err := c.sendID()
	if err != nil {
		return err
	}
	m := c.mux
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if gw, ok := m.f.(gatherWriter); ok && m.corked == 0 {
		var head [maxHeader]byte
		m.parts = append(append(m.parts[:0], compact.AppendUint(compact.AppendUint(head[:0], lid), typ)), parts...)
		err := gw.WriteMessageVec(m.parts)
		clear(m.parts) // the parts are the caller's again
		return err
	}
	// Copied together behind room for the header, which sendIn then
	// writes in place.
	b := append(m.wbuf[:0], make([]byte, maxHeader)...)
	for _, p := range parts {
		b = append(b, p...)
	}
	m.wbuf = b
	return m.sendIn(lid, typ, b, maxHeader)
}

// sendID is the channel's local id, for a send; an error once it closed.
func (c *Channel) sendID() (uint64, error) {
	m := c.mux
	m.mu.Lock()
	closed, lid := c.closed, c.localID
	m.mu.Unlock()
	if closed || lid == 0 {
		return 0, ErrChannelClosed
	}
	return lid, nil
}

// sendIn is SendIn for channel lid; wmu is held.
func (m *Mux) sendIn(lid, typ uint64, b []byte, room int) error {
	payload := b[room:]
	if m.corked > 0 {
		return m.pushBatch(lid, compact.AppendUint(nil, typ), payload)
	}
	if n := compact.UintSize(lid) + compact.UintSize(typ); n <= room {
		compact.AppendUint(compact.AppendUint(b[room-n:room-n], lid), typ)
		return m.f.WriteMessage(b[room-n:])
	}
	w := compact.AppendUint(compact.AppendUint(m.wbuf[:0], lid), typ)
	w = append(w, payload...)
	m.wbuf = w
	return m.f.WriteMessage(w)
}

// Close sends a close and closes the channel locally.
func (c *Channel) Close() error {
	m := c.mux
	m.mu.Lock()
	if c.closed {
		m.mu.Unlock()
		return nil
	}
	lid := c.localID
	m.closeLocked(c)
	m.mu.Unlock()
	var err error
	if lid != 0 {
		err = m.writeControl(append([]byte{0, 3}, compact.AppendUint(nil, lid)...))
	}
	if c.h.OnClose != nil {
		c.h.OnClose(false)
	}
	return err
}

// Opened reports whether both sides have opened the channel.
func (c *Channel) Opened() bool {
	c.mux.mu.Lock()
	defer c.mux.mu.Unlock()
	return c.opened && !c.closed
}

// closeLocked frees the channel's ids. A local id the remote has not yet
// answered stays reserved until its open is answered.
func (m *Mux) closeLocked(c *Channel) {
	c.closed = true
	if c.remoteID > 0 {
		if int(c.remoteID) <= len(m.remote) {
			m.remote[c.remoteID-1] = nil
		}
		if c.localID > 0 {
			m.free = append(m.free, c.localID-1)
		}
		c.remoteID = 0
	}
	if c.localID > 0 {
		m.local[c.localID-1] = nil
	}
}

// Cork starts a batch: messages are held until the matching Uncork.
func (m *Mux) Cork() {
	m.wmu.Lock()
	if m.corked++; m.corked == 1 {
		m.batch = m.batch[:0]
	}
	m.wmu.Unlock()
}

// Uncork ends a batch and sends it as one frame.
func (m *Mux) Uncork() error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.corked == 0 {
		return nil
	}
	if m.corked--; m.corked > 0 {
		return nil
	}
	return m.flushBatch()
}

func (m *Mux) flushBatch() error {
	if len(m.batch) == 0 {
		return nil
	}
	b := m.batch
	m.batch = m.batch[:0]
	return m.f.WriteMessage(b)
}

// pushBatch adds one entry; wmu is held.
func (m *Mux) pushBatch(ch uint64, head, payload []byte) error {
	if len(m.batch) >= MaxBatch {
		if err := m.flushBatch(); err != nil {
			return err
		}
	}
	if len(m.batch) == 0 {
		m.batch = compact.AppendUint(append(m.batch, 0, 0), ch)
	} else if ch != m.batchC {
		m.batch = compact.AppendUint(append(m.batch, 0), ch)
	}
	m.batchC = ch
	m.batch = compact.AppendUint(m.batch, uint64(len(head)+len(payload)))
	m.batch = append(append(m.batch, head...), payload...)
	return nil
}

// writeControl sends a channel-0 frame, or batches it (without its leading
// channel byte) when corked.
func (m *Mux) writeControl(frame []byte) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.corked > 0 {
		return m.pushBatch(0, frame[1:], nil)
	}
	return m.f.WriteMessage(frame)
}
