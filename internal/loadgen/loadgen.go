// Package loadgen opens many relay sessions against a deployed relay and
// measures what they cost it: sessions are opened at a given rate up to a
// given count from source addresses spread over a prefix, held idle (each
// answering the relay's pings) or given work, a share reconnected every
// second, with the setup latency and failures by kind recorded, and the
// relay's memory and goroutines read from its metrics.
//
// An idle session speaks the @hyperswarm/dht-relay protocol (relay) over
// Protomux on a WebSocket with small buffers, so that one process holds
// many; a working session uses the project's client (relay.Client).
package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/relay"
)

// Sources hands out local addresses to dial from: perAddress sessions to
// each address of prefix before the next, so that one machine opens more
// sessions than one address has ports, and a relay's per-address limits
// can be met or avoided as the test wants.
type Sources struct {
	mu         sync.Mutex
	next       netip.Addr
	prefix     netip.Prefix
	perAddress int
	used       int
}

// NewSources spreads over prefix (zero: the system picks) perAddress at a
// time.
func NewSources(prefix netip.Prefix, perAddress int) *Sources {
	s := &Sources{prefix: prefix, perAddress: max(perAddress, 1)}
	if prefix.IsValid() {
		s.next = prefix.Masked().Addr().Next()
	}
	return s
}

// Next is the address the next session dials from; invalid when the
// system picks.
func (s *Sources) Next() netip.Addr {
	if !s.prefix.IsValid() {
		return netip.Addr{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used == s.perAddress {
		s.used = 0
		if n := s.next.Next(); s.prefix.Contains(n) {
			s.next = n
		} else {
			s.next = s.prefix.Masked().Addr().Next()
		}
	}
	s.used++
	return s.next
}

// dialer dials from src with buffers small enough for many idle sessions.
func dialer(src netip.Addr) *websocket.Dialer {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if src.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second, ReadBufferSize: 512, WriteBufferSize: 512}
}

// Session is one idle session: it answers the relay's pings on a goroutine
// of its own until closed.
type Session struct {
	c    *websocket.Conn
	done chan struct{}
}

// RefusedError means the relay refused the session at the upgrade, with
// an HTTP status.
type RefusedError struct{ Status string }

func (e *RefusedError) Error() string { return "loadgen: session refused: " + e.Status }

// Open opens an idle custodial session on the relay at url from src and
// waits until the relay answers a ping, which it does once it has placed
// the session.
func Open(ctx context.Context, url string, src netip.Addr) (*Session, error) {
	c, res, err := dialer(src).DialContext(ctx, url, nil)
	if err != nil {
		if res != nil {
			return nil, &RefusedError{Status: res.Status}
		}
		return nil, err
	}
	f := relay.NewWebSocketFramed(c, 1<<20, 10*time.Second)
	mux := protomux.New(f)
	ponged := make(chan struct{}, 1)
	var ch *protomux.Channel
	ch = mux.CreateChannel(relay.Protocol, nil, protomux.Handlers{OnMessage: func(typ uint64, _ []byte) {
		switch relay.MessageType(typ) {
		case relay.TypePing:
			ch.Send(uint64(relay.TypePong), nil)
		case relay.TypePong:
			select {
			case ponged <- struct{}{}:
			default:
			}
		}
	}})
	kp, err := noise.GenerateKeyPair(rand.Reader)
	if err != nil {
		c.Close()
		return nil, err
	}
	hs := &relay.Handshake{Custodial: true, PublicKey: kp.Public, SecretKey: kp.Secret}
	if err := errors.Join(ch.Open(nil), ch.Send(uint64(hs.Type()), hs.AppendPayload(nil)), ch.Send(uint64(relay.TypePing), nil)); err != nil {
		c.Close()
		return nil, err
	}
	s := &Session{c: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			frame, err := f.ReadMessage()
			if err == nil {
				err = mux.Receive(frame)
			}
			if err != nil {
				c.Close()
				return
			}
		}
	}()
	select {
	case <-ponged:
		return s, nil
	case <-s.done:
		return nil, errors.New("loadgen: closed before the handshake was answered")
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
}

// Close ends the session and waits for its reader.
func (s *Session) Close() {
	s.c.Close()
	<-s.done
}

// Done is closed once the relay or Close ended the session.
func (s *Session) Done() <-chan struct{} { return s.done }

// Kind names an error of Open for counting.
func Kind(err error) string {
	var ne net.Error
	var refused *RefusedError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &refused):
		return "refused " + refused.Status
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no source port"
	}
	return "other"
}

// Stats collects what the sessions met.
type Stats struct {
	mu     sync.Mutex
	setup  []time.Duration
	errors map[string]int
}

// Record counts one attempt to open a session, taking d.
func (s *Stats) Record(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.errors == nil {
			s.errors = map[string]int{}
		}
		s.errors[Kind(err)]++
		return
	}
	s.setup = append(s.setup, d)
}

// Setup returns the setup latency at the quantiles qs of the sessions
// opened since the last call, and forgets them.
func (s *Stats) Setup(qs ...float64) []time.Duration {
	s.mu.Lock()
	d := s.setup
	s.setup = nil
	s.mu.Unlock()
	out := make([]time.Duration, len(qs))
	if len(d) == 0 {
		return out
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	for i, q := range qs {
		out[i] = d[min(int(q*float64(len(d))), len(d)-1)]
	}
	return out
}

// Errors is the failures so far by kind.
func (s *Stats) Errors() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.errors))
	for k, v := range s.errors {
		out[k] = v
	}
	return out
}

// Metrics reads the relay's resident memory, goroutines and edge sessions
// from its Prometheus text at url (…/metrics); zero where absent.
func Metrics(ctx context.Context, url string) (rss, goroutines, sessions int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer res.Body.Close()
	vals, err := scrape(res.Body, "process_resident_memory_bytes", "go_goroutines", `dhtrelay_sessions{role="edge"`)
	return vals[0], vals[1], vals[2], err
}

// scrape reads the first sample of each series named by prefixes (a name,
// or a name and the start of its labels) from Prometheus text.
func scrape(r io.Reader, prefixes ...string) ([]int64, error) {
	out := make([]int64, len(prefixes))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := make([]bool, len(prefixes))
	for sc.Scan() {
		line := sc.Text()
		for i, p := range prefixes {
			if seen[i] || !strings.HasPrefix(line, p) {
				continue
			}
			rest := line[len(p):]
			if !strings.Contains(p, "{") && !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{") {
				continue // another series whose name starts the same
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				out[i], seen[i] = int64(v), true
			}
		}
	}
	return out, sc.Err()
}
