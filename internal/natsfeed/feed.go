// Package natsfeed receives the messages of one NATS subject on a
// connection of its own and lends each payload in a pooled buffer, which
// the handler gives back once done with it.
//
// It speaks the subscriber's half of the NATS client protocol: INFO,
// CONNECT (token, user and password, nkey or user JWT; TLS when the
// server asks or the followed connection has it), SUB,
// PING/PONG, MSG and HMSG. The NATS client library copies every payload
// into memory of its own, which at the rate of relayed stream data was
// most of the garbage an edge or a worker made, and the collector's work
// a tenth of its CPU. Publishing stays with the library.
package natsfeed

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrNotConnected means the NATS connection the feed follows had no server
// when the feed dialled.
var ErrNotConnected = errors.New("natsfeed: NATS is not connected")

const (
	// pingInterval is how often the feed pings an otherwise quiet server;
	// a connection that stays silent for deadAfter is taken for dead.
	pingInterval = 20 * time.Second
	deadAfter    = 2*pingInterval + 5*time.Second
	// handshakeTimeout bounds connecting and subscribing.
	handshakeTimeout = 10 * time.Second
	// redialWait and maxRedialWait pace dialling again after a loss:
	// sooner than the library reconnects, so that the feed is back when
	// new sessions are.
	redialWait    = 100 * time.Millisecond
	maxRedialWait = time.Second
)

// Config is what a feed follows and where its messages go.
type Config struct {
	// NATS is the connection the feed follows: it connects to the server
	// NATS is connected to, the same way (over TCP, or in the server's
	// process), with its credentials and TLS settings.
	NATS    *nats.Conn
	Subject string
	// Handle receives each message, in order, on the feed's goroutine;
	// it must not block.
	Handle func(Msg)
	// Lost learns that the connection failed: messages may have been
	// missed. The feed dials again until it is closed.
	Lost func(error)
}

// Feed is a running subscription. Its goroutine is started by Start and
// stopped by Close.
type Feed struct {
	cfg    Config
	pool   *sync.Pool
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	up     atomic.Bool // subscribed: what is published now arrives

	mu   sync.Mutex // the current connection, for Close
	conn net.Conn
}

// Start connects and subscribes, and returns once the server has the
// subscription.
func Start(cfg Config) (*Feed, error) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Feed{cfg: cfg, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	f.pool = newPool()
	c, err := f.dial()
	if err != nil {
		cancel()
		return nil, err
	}
	go f.run(c)
	return f, nil
}

// Close unsubscribes and waits for the feed's goroutine.
func (f *Feed) Close() error {
	f.cancel()
	f.mu.Lock()
	if f.conn != nil {
		f.conn.Close()
	}
	f.mu.Unlock()
	<-f.done
	return nil
}

// Up reports whether the feed is subscribed. While it is not, what is
// published to its subject is lost.
func (f *Feed) Up() bool { return f.up.Load() }

// conn is one connection to the server.
type conn struct {
	net.Conn
	r   *reader
	wmu sync.Mutex // PONGs from the reader, PINGs from the pinger
}

func (c *conn) send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	_, err := c.Write([]byte(s))
	return err
}

func (f *Feed) run(c *conn) {
	defer close(f.done)
	for {
		err := f.serve(c)
		f.up.Store(false)
		c.Close()
		if f.ctx.Err() != nil {
			return
		}
		f.cfg.Lost(fmt.Errorf("natsfeed %s: %w", f.cfg.Subject, err))
		for wait := redialWait; ; wait = min(2*wait, maxRedialWait) {
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(wait):
			}
			if c, err = f.dial(); err == nil {
				break
			}
		}
	}
}

// serve reads until the connection fails.
func (f *Feed) serve(c *conn) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the pinger: serve's, stopped when it returns
		t := time.NewTicker(pingInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if c.send("PING\r\n") != nil {
					return
				}
			}
		}
	}()
	var last time.Time
	for {
		if now := time.Now(); now.Sub(last) > time.Second {
			c.SetReadDeadline(now.Add(deadAfter))
			last = now
		}
		if _, err := f.step(c); err != nil {
			return err
		}
	}
}

// step reads one operation and handles it: a message goes to the handler,
// a PING is answered, a -ERR is an error.
func (f *Feed) step(c *conn) (op, error) {
	o, m, arg, err := c.r.next()
	if err != nil {
		return o, err
	}
	switch o {
	case opMsg:
		f.cfg.Handle(m)
	case opPing:
		return o, c.send("PONG\r\n")
	case opErr:
		return o, fmt.Errorf("server: %s", arg)
	}
	return o, nil
}

// info is what the feed reads of the server's INFO.
type info struct {
	TLSRequired bool   `json:"tls_required"`
	Headers     bool   `json:"headers"`
	Nonce       string `json:"nonce"` // signed with an nkey or a user JWT's key
}

// dial connects to the server the followed connection uses, subscribes
// and waits for the server to confirm.
func (f *Feed) dial() (*conn, error) {
	raw := f.cfg.NATS.ConnectedUrl()
	if raw == "" {
		return nil, ErrNotConnected
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("natsfeed: server URL: %w", err)
	}
	nc, err := f.open(u)
	if err != nil {
		return nil, err
	}
	// Known to Close from here on, so that Close need not wait out the
	// handshake.
	f.mu.Lock()
	f.conn = nc
	closed := f.ctx.Err() != nil
	f.mu.Unlock()
	if closed {
		nc.Close()
		return nil, f.ctx.Err()
	}
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	c, err := f.handshake(nc, u)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	f.up.Store(true)
	return c, nil
}

// open connects to the server as the followed connection did: through the
// server's process when that is where it runs, else over TCP.
func (f *Feed) open(u *url.URL) (net.Conn, error) {
	if p := f.cfg.NATS.Opts.InProcessServer; p != nil {
		nc, err := p.InProcessConn()
		if err != nil {
			return nil, fmt.Errorf("natsfeed: in-process connection: %w", err)
		}
		return nc, nil
	}
	d := net.Dialer{Timeout: handshakeTimeout}
	nc, err := d.DialContext(f.ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("natsfeed: dial: %w", err)
	}
	return nc, nil
}

func (f *Feed) handshake(nc net.Conn, u *url.URL) (*conn, error) {
	opts := f.cfg.NATS.Opts
	secure := opts.Secure || opts.TLSConfig != nil || u.Scheme == "tls"
	tlsConn := func() {
		cfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		if opts.TLSConfig != nil {
			cfg = opts.TLSConfig.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = u.Hostname()
			}
		}
		nc = tls.Client(nc, cfg)
	}
	if secure && opts.TLSHandshakeFirst {
		tlsConn()
	}
	c := &conn{Conn: nc, r: newReader(nc, f.pool)}
	o, _, arg, err := c.r.next()
	if err != nil {
		return nil, fmt.Errorf("natsfeed: reading INFO: %w", err)
	}
	var in info
	if o != opInfo || json.Unmarshal(arg, &in) != nil {
		return nil, fmt.Errorf("%w: the server did not start with INFO", ErrProtocol)
	}
	if !in.Headers {
		return nil, fmt.Errorf("%w: the server does not support headers", ErrProtocol)
	}
	if (secure || in.TLSRequired) && !opts.TLSHandshakeFirst {
		tlsConn()
		c = &conn{Conn: nc, r: newReader(nc, f.pool)}
	}
	connect := map[string]any{
		"verbose": false, "pedantic": false, "lang": "go", "version": "natsfeed",
		"protocol": 1, "headers": true, "tls_required": secure || in.TLSRequired,
		"name": opts.Name + " feed",
	}
	user, pass, token := opts.User, opts.Password, opts.Token
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			user, pass = u.User.Username(), p
		} else {
			token = u.User.Username()
		}
	}
	if token != "" {
		connect["auth_token"] = token
	}
	if user != "" {
		connect["user"], connect["pass"] = user, pass
	}
	if err := sign(connect, opts, in.Nonce); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(connect)
	if err := c.send(fmt.Sprintf("CONNECT %s\r\nSUB %s 1\r\nPING\r\n", b, f.cfg.Subject)); err != nil {
		return nil, fmt.Errorf("natsfeed: subscribe: %w", err)
	}
	// What the server publishes before its PONG is delivered as usual.
	for {
		o, err := f.step(c)
		if err != nil {
			return nil, fmt.Errorf("natsfeed: subscribe: %w", err)
		}
		if o == opPong {
			return c, nil
		}
	}
}

// sign adds to connect the proof an nkey or a user JWT (a credentials
// file) gives, as the followed connection's options make it: the server's
// nonce signed by the connection's own callback, base64url without
// padding, as nats.go sends it.
func sign(connect map[string]any, opts nats.Options, nonce string) error {
	if opts.Nkey == "" && opts.UserJWT == nil {
		return nil
	}
	if opts.SignatureCB == nil {
		return fmt.Errorf("natsfeed: an nkey or JWT without a signature callback")
	}
	if opts.UserJWT != nil {
		jwt, err := opts.UserJWT()
		if err != nil {
			return fmt.Errorf("natsfeed: user JWT: %w", err)
		}
		connect["jwt"] = jwt
	} else {
		connect["nkey"] = opts.Nkey
	}
	sig, err := opts.SignatureCB([]byte(nonce))
	if err != nil {
		return fmt.Errorf("natsfeed: signing the nonce: %w", err)
	}
	connect["sig"] = base64.RawURLEncoding.EncodeToString(sig)
	return nil
}
