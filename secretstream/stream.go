// Package secretstream implements @hyperswarm/secret-stream: an encrypted,
// framed, bidirectional stream over any reliable byte stream (a TCP
// connection, a UDX stream).
//
// On the wire every message is a 3-byte little-endian length and a body. A
// stream starts either with a Noise XX handshake (empty prologue and
// payloads, Ed25519 keys) or with keys from a handshake made elsewhere, as
// hyperdht's IK handshake makes them. Each side then sends one 56-byte body:
// its stream id, a keyed BLAKE2b-256 of the handshake hash, and the header of
// libsodium's crypto_secretstream_xchacha20poly1305. Every later body is one
// secretstream message: an encrypted tag byte, the ciphertext and a 16-byte
// MAC. With keepalive on, an idle writer sends empty messages, which the
// reader drops.
package secretstream

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/dhtrelay/dht-relay/noise"
)

// Limits of the framing.
const (
	// MaxMessageSize is the largest plaintext one message can carry: the
	// 3-byte length covers the body, which adds ABytes.
	MaxMessageSize = 1<<24 - 1 - ABytes
	// keptWrite is the largest message whose sealing buffer the stream
	// keeps for the next: a longer one is sealed in a buffer of its own,
	// so that one long write does not hold its length for the stream's
	// life.
	keptWrite = 64 << 10
	// readBufferSize is the buffered reader in front of the raw stream:
	// enough to take a run of small messages in one read. Bodies at least
	// this long are read past it, straight into the message buffer; a
	// larger one would first fill with most of the next body and copy it
	// twice.
	readBufferSize = 4 << 10
	idHeaderSize   = 32 + HeaderSize
)

var (
	// ErrInvalidHeader means the first message after the handshake was not a
	// valid stream id and header for this handshake.
	ErrInvalidHeader = errors.New("secretstream: invalid header received")
	// ErrMessageTooLarge means a message exceeds the configured limit.
	ErrMessageTooLarge = errors.New("secretstream: message too large")
	// ErrHandshake means the Noise handshake failed.
	ErrHandshake = errors.New("secretstream: noise handshake failed")
)

// The stream-id namespaces: hypercore-crypto's
// namespace("hyperswarm/secret-stream", 3), of which the third (for
// unordered send) is not used by streams.
var nsInitiator, nsResponder = namespace(0), namespace(1)

func namespace(i byte) [32]byte {
	base := blake2b.Sum256([]byte("hyperswarm/secret-stream"))
	return blake2b.Sum256(append(base[:], i))
}

// StreamID is the id a side of the given role sends in its header.
func StreamID(handshakeHash []byte, initiator bool) [32]byte {
	ns := nsResponder
	if initiator {
		ns = nsInitiator
	}
	h, _ := blake2b.New256(handshakeHash)
	h.Write(ns[:])
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// Keys is the outcome of a handshake made elsewhere.
type Keys struct {
	Tx, Rx          [KeySize]byte
	Hash            [64]byte
	PublicKey       [32]byte
	RemotePublicKey [32]byte
}

// Config configures a Stream.
type Config struct {
	// KeyPair is the static key for the XX handshake; ignored with Keys.
	KeyPair noise.KeyPair
	// Keys skips the handshake, as hyperdht does after its IK handshake.
	Keys *Keys
	// KeepAlive, when positive, sends an empty message after that much
	// write idleness and drops received empty messages.
	KeepAlive time.Duration
	// MaxMessageSize bounds received messages; 0 means MaxMessageSize.
	MaxMessageSize int
}

// SetMaxMessageSize sets the largest message the stream reads from now on
// (0 or past MaxMessageSize: MaxMessageSize), as a server does that
// allows a client little until it has said who it is. It may be called
// while another goroutine reads.
func (s *Stream) SetMaxMessageSize(n int) {
	if n <= 0 || n > MaxMessageSize {
		n = MaxMessageSize
	}
	s.maxMsg.Store(int64(n))
}

// AdmitMessages has fn decide on each message to come by its length,
// once its length is read and before any of its body is: a message is
// read whole before it can be returned, so a reader that holds memory to
// a budget must count it, or refuse it, before the peer sends it. An
// error from fn ends reading: this read and every later one return it.
// fn runs on the reading goroutine.
func (s *Stream) AdmitMessages(fn func(n int) error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.admit = fn
}

// RawStream is what a Stream runs over.
type RawStream interface {
	io.ReadWriteCloser
}

// Stream is an encrypted stream. ReadMessage and Read are for one reader
// goroutine; WriteMessage and Write may be called concurrently.
type Stream struct {
	raw       RawStream
	br        *bufio.Reader
	initiator bool
	keys      Keys
	maxMsg    atomic.Int64 // largest message read; SetMaxMessageSize changes it
	keepAlive time.Duration
	filter    bool

	rmu       sync.Mutex
	dec       sodiumState
	gotHeader bool
	rbuf      []byte
	unread    []byte
	admit     func(n int) error
	rerr      error // a message admit refused: the stream reads no more

	wmu       sync.Mutex
	enc       sodiumState
	long      *sealer // the message BeginMessage began, while its bytes come
	wbuf      []byte
	werr      error
	lastWrite atomic.Int64
	kaTimer   *time.Timer
	closed    atomic.Bool
}

// New starts a stream over raw: it runs the XX handshake unless cfg.Keys is
// set, then sends this side's id and header. The remote header is read with
// the first message. The caller bounds the handshake with deadlines on raw.
func New(raw RawStream, initiator bool, cfg Config) (*Stream, error) {
	s := &Stream{
		raw:       raw,
		br:        bufio.NewReaderSize(raw, readBufferSize),
		initiator: initiator,
		keepAlive: cfg.KeepAlive,
		filter:    cfg.KeepAlive > 0,
	}
	s.SetMaxMessageSize(cfg.MaxMessageSize)
	if cfg.Keys != nil {
		s.keys = *cfg.Keys
	} else {
		k, err := s.handshake(cfg.KeyPair)
		if err != nil {
			return nil, err
		}
		s.keys = k
	}
	var header [HeaderSize]byte
	if _, err := rand.Read(header[:]); err != nil {
		return nil, err
	}
	s.enc.init(&s.keys.Tx, &header)
	id := StreamID(s.keys.Hash[:], initiator)
	frame := append(append([]byte{idHeaderSize, 0, 0}, id[:]...), header[:]...)
	if _, err := raw.Write(frame); err != nil {
		return nil, fmt.Errorf("secretstream: write header: %w", err)
	}
	s.lastWrite.Store(time.Now().UnixNano())
	if s.keepAlive > 0 {
		s.wmu.Lock()
		s.kaTimer = time.AfterFunc(s.keepAlive, s.onKeepAlive)
		s.wmu.Unlock()
	}
	return s, nil
}

func (s *Stream) handshake(kp noise.KeyPair) (Keys, error) {
	hs, err := noise.NewHandshake(noise.Config{Pattern: noise.XX, Initiator: s.initiator, Static: kp})
	if err != nil {
		return Keys{}, err
	}
	for !hs.Complete() {
		if hs.Sending() {
			msg, err := hs.Send(nil)
			if err != nil {
				return Keys{}, fmt.Errorf("%w: %v", ErrHandshake, err)
			}
			if _, err := s.raw.Write(append([]byte{byte(len(msg)), byte(len(msg) >> 8), byte(len(msg) >> 16)}, msg...)); err != nil {
				return Keys{}, fmt.Errorf("secretstream: write handshake: %w", err)
			}
			continue
		}
		msg, err := s.readFrame(noise.MaxMessageSize, 0, 0)
		if err != nil {
			return Keys{}, fmt.Errorf("secretstream: read handshake: %w", err)
		}
		if _, err := hs.Recv(msg); err != nil {
			return Keys{}, fmt.Errorf("%w: %v", ErrHandshake, err)
		}
	}
	r, _ := hs.Result()
	return Keys{Tx: r.Tx, Rx: r.Rx, Hash: r.Hash, PublicKey: kp.Public, RemotePublicKey: r.RemoteStatic}, nil
}

// readFrame reads one length-prefixed body into s.rbuf at offset headroom,
// with tailroom spare bytes after it, and returns it.
func (s *Stream) readFrame(limit, headroom, tailroom int) ([]byte, error) {
	var l [3]byte
	if _, err := io.ReadFull(s.br, l[:]); err != nil {
		return nil, err
	}
	n := int(l[0]) | int(l[1])<<8 | int(l[2])<<16
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, n)
	}
	if s.admit != nil && s.gotHeader {
		if err := s.admit(max(n-ABytes, 0)); err != nil {
			s.rerr = err
			return nil, err
		}
	}
	want := headroom + n + tailroom
	if cap(s.rbuf) > 4*readGrowStep && want <= readGrowStep {
		// A large message is not held on to once small ones follow: an
		// idle connection keeps no more than its largest recent need.
		s.rbuf = nil
	}
	if cap(s.rbuf) < want {
		// The buffer grows as the bytes arrive, never to a length the
		// peer merely declared: three bytes declaring 16 MiB cost
		// nothing more than the buffer already held.
		return s.readGrowing(headroom, n, want)
	}
	body := s.rbuf[headroom : headroom+n]
	if err := s.readFull(body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// fullReader is a raw stream that can wait for all of what a read asks
// for at once (a UDX stream): one wake for a message's body, not one for
// each run of packets that brings part of it.
type fullReader interface {
	ReadFull(p []byte) (int, error)
}

// readFull fills p from what is buffered and then from the raw stream.
func (s *Stream) readFull(p []byte) error {
	r, ok := s.raw.(fullReader)
	if !ok || len(p) <= s.br.Buffered() {
		_, err := io.ReadFull(s.br, p)
		return err
	}
	// Once br holds nothing, the raw stream is read past it.
	k := 0
	if s.br.Buffered() > 0 {
		k, _ = s.br.Read(p[:s.br.Buffered()])
	}
	_, err := r.ReadFull(p[k:])
	return err
}

// readGrowStep is the first size a read buffer grows to, doubling after.
const readGrowStep = 64 << 10

// readGrowing reads the n bytes of a frame behind headroom into s.rbuf,
// doubling it from readGrowStep as they arrive, up to want.
func (s *Stream) readGrowing(headroom, n, want int) ([]byte, error) {
	buf := make([]byte, headroom, min(want, max(headroom+readGrowStep, 2*cap(s.rbuf))))
	for len(buf) < headroom+n {
		if len(buf) == cap(buf) {
			buf = append(make([]byte, 0, min(want, 2*cap(buf))), buf...)
		}
		k, err := s.br.Read(buf[len(buf):min(cap(buf), headroom+n)])
		buf = buf[:len(buf)+k]
		if err != nil && len(buf) < headroom+n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	if cap(buf) < want {
		buf = append(make([]byte, 0, want), buf...)
	}
	s.rbuf = buf[:want]
	return s.rbuf[headroom : headroom+n], nil
}

// ReadMessage returns the next message. The slice is valid until the next
// call. At the end of the raw stream it returns io.EOF.
func (s *Stream) ReadMessage() ([]byte, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.readMessage()
}

func (s *Stream) readMessage() ([]byte, error) {
	if !s.gotHeader {
		body, err := s.readFrame(idHeaderSize, 0, 0)
		if err != nil {
			return nil, err
		}
		want := StreamID(s.keys.Hash[:], !s.initiator)
		if len(body) != idHeaderSize || string(body[:32]) != string(want[:]) {
			return nil, ErrInvalidHeader
		}
		s.dec.init(&s.keys.Rx, (*[HeaderSize]byte)(body[32:]))
		s.gotHeader = true
	}
	for {
		if s.rerr != nil {
			return nil, s.rerr
		}
		body, err := s.readFrame(int(s.maxMsg.Load())+ABytes, msgOffset-1, tailRoom-16)
		if err != nil {
			return nil, err
		}
		if len(body) < ABytes {
			return nil, fmt.Errorf("secretstream: invalid message received (%d bytes)", len(body))
		}
		n := len(body) - ABytes
		if _, err := s.dec.open(s.rbuf[:bufferSize(n)], n); err != nil {
			return nil, err
		}
		if n == 0 && s.filter {
			continue
		}
		return s.rbuf[msgOffset : msgOffset+n], nil
	}
}

// Read implements io.Reader over the message stream.
func (s *Stream) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if err := s.fillUnread(); err != nil {
		return 0, err
	}
	n := copy(p, s.unread)
	s.unread = s.unread[n:]
	return n, nil
}

// MaxChunkRoom is the most room ReadChunk leaves in front of the bytes.
const MaxChunkRoom = msgOffset - 1

// ReadChunk is Read without the copy: it returns b, where b[room:] is up
// to max of the next bytes and b[:room] may be overwritten, so that a
// caller sending the bytes on writes its header there. b is valid until
// the next read. room is at most MaxChunkRoom: in front of a message lie
// the bytes its decryption used, in front of a later part of it the part
// returned before.
func (s *Stream) ReadChunk(max, room int) ([]byte, error) {
	if room > MaxChunkRoom {
		return nil, fmt.Errorf("secretstream: %d bytes of room asked, %d at most", room, MaxChunkRoom)
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if err := s.fillUnread(); err != nil {
		return nil, err
	}
	n := min(max, len(s.unread))
	off := cap(s.rbuf) - cap(s.unread) // where the bytes lie in rbuf
	s.unread = s.unread[n:]
	return s.rbuf[off-room : off+n], nil
}

// Unread is how much of the message ReadChunk returned part of is still to
// come: a reader forwarding a message in parts learns its length from its
// first part and this.
func (s *Stream) Unread() int {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return len(s.unread)
}

// fillUnread reads the next message once the last one has been read.
func (s *Stream) fillUnread() error {
	for len(s.unread) == 0 {
		m, err := s.readMessage()
		if err != nil {
			return err
		}
		s.unread = m
	}
	return nil
}

// WriteMessage sends p as one message.
func (s *Stream) WriteMessage(p []byte) error {
	if len(p) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, len(p))
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeMessage(p)
}

func (s *Stream) writeMessage(p []byte) error {
	if s.werr != nil {
		return s.werr
	}
	if s.long != nil {
		return ErrMessageOpen
	}
	n := len(p)
	need := bufferSize(n)
	buf := s.sealBuffer(need)
	s.enc.seal(buf, p, TagMessage)
	// The frame is the 3-byte length and the body that seal laid out.
	body := 1 + n + 16
	buf[msgOffset-4], buf[msgOffset-3], buf[msgOffset-2] = byte(body), byte(body>>8), byte(body>>16)
	return s.writeRaw(buf[msgOffset-4 : msgOffset+n+16])
}

// ErrMessageOpen means a message was written while one that BeginMessage
// began still lacked bytes.
var ErrMessageOpen = errors.New("secretstream: a message begun is not yet whole")

// BeginMessage begins a message of n bytes, which the Writes that follow
// carry in parts of any size: the other end receives it as one message,
// as if written whole. A relay forwarding a large write that reaches it
// in parts so keeps the write one message, which the other end's framing
// (Protomux, say) relies on. Keepalives wait until it is whole. Its
// length and header go in the first part's write: over UDX a write of
// their own was a packet of 4 bytes and an ack for each message, 2% of
// an upload's packets to a JS peer (custodial uploads alternated with
// the head written alone: 7.30 against 7.67 s of CPU per GB, median of
// 12 each).
func (s *Stream) BeginMessage(n int) error {
	if n > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, n)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.werr != nil {
		return s.werr
	}
	if s.long != nil {
		return ErrMessageOpen
	}
	s.long = s.enc.begin(n, TagMessage)
	if n == 0 {
		head := s.long.frameHead()
		m := s.long.finish()
		s.long = nil
		return s.writeRaw(append(head[:], m[:]...))
	}
	return nil
}

// sealBuffer is room for need bytes of sealed frame: the buffer the
// stream keeps, unless need is more than it keeps (keptWrite), which gets
// a buffer of its own; the write lock is held.
func (s *Stream) sealBuffer(need int) []byte {
	kept := bufferSize(keptWrite)
	switch {
	case cap(s.wbuf) >= need:
		return s.wbuf[:need]
	case need > kept:
		return make([]byte, need)
	}
	s.wbuf = make([]byte, kept)
	return s.wbuf[:need]
}

// writeRaw writes frame bytes; the write lock is held.
func (s *Stream) writeRaw(b []byte) error {
	if _, err := s.raw.Write(b); err != nil {
		s.werr = fmt.Errorf("secretstream: write: %w", err)
		return s.werr
	}
	s.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// writePart seals and writes what p holds of the message begun, and its
// MAC once it is whole; it returns the bytes of p taken.
func (s *Stream) writePart(p []byte) (int, error) {
	z := s.long
	k := min(len(p), z.n-z.off)
	whole := z.off+k == z.n
	need := k
	if whole {
		need += tagSize
	}
	var head []byte
	if z.off == 0 { // the first part: the message's length and header go with it
		fh := z.frameHead()
		head = fh[:]
	}
	buf := s.sealBuffer(len(head) + need)
	h := copy(buf, head)
	z.part(buf[h:], p[:k])
	if whole {
		m := z.finish()
		copy(buf[h+k:], m[:])
		s.long = nil
	}
	return k, s.writeRaw(buf)
}

// Write implements io.Writer, sending p as one message, as the JS
// SecretStream sends each write (Protomux and all built on it read a
// message as a frame), or as the rest of a message BeginMessage began.
// A write longer than a message can be (MaxMessageSize), which the JS
// stream refuses, goes in messages of MaxMessageSize and the rest.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	written := 0
	for s.long != nil && len(p) > 0 {
		if s.werr != nil {
			return written, s.werr
		}
		k, err := s.writePart(p)
		written += k
		p = p[k:]
		if err != nil {
			return written, err
		}
	}
	for len(p) > 0 {
		n := min(len(p), MaxMessageSize)
		if err := s.writeMessage(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (s *Stream) onKeepAlive() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return
	}
	idle := time.Since(time.Unix(0, s.lastWrite.Load()))
	if s.long != nil {
		idle = 0 // a message's bytes are on their way
	} else if idle >= s.keepAlive {
		if s.writeMessage(nil) != nil {
			return
		}
		idle = 0
	}
	s.kaTimer.Reset(s.keepAlive - idle)
}

// CloseWrite half-closes the stream when the raw stream supports it.
func (s *Stream) CloseWrite() error {
	s.stopKeepAlive()
	if cw, ok := s.raw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the raw stream.
func (s *Stream) Close() error {
	// Closing raw first unblocks a writer holding the write lock.
	s.closed.Store(true)
	err := s.raw.Close()
	s.stopKeepAlive()
	return err
}

func (s *Stream) stopKeepAlive() {
	s.closed.Store(true)
	s.wmu.Lock()
	if s.kaTimer != nil {
		s.kaTimer.Stop()
	}
	s.wmu.Unlock()
}

// IsInitiator reports the stream's role.
func (s *Stream) IsInitiator() bool { return s.initiator }

// PublicKey is the local static key.
func (s *Stream) PublicKey() [32]byte { return s.keys.PublicKey }

// RemotePublicKey is the remote static key.
func (s *Stream) RemotePublicKey() [32]byte { return s.keys.RemotePublicKey }

// HandshakeHash is the Noise handshake hash.
func (s *Stream) HandshakeHash() [64]byte { return s.keys.Hash }
