package natsfeed

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/dhtrelay/dht-relay/internal/natstest"
)

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// collector is a feed's handler that keeps copies of what arrives.
type collector struct {
	mu     sync.Mutex
	msgs   []Msg
	pooled []bool
	got    chan struct{}
	lost   chan error
}

func newCollector() *collector {
	return &collector{got: make(chan struct{}, 1<<16), lost: make(chan error, 16)}
}

func (c *collector) handle(m Msg) {
	c.mu.Lock()
	c.msgs = append(c.msgs, Msg{Subject: bytes.Clone(m.Subject), Header: m.Header, Data: bytes.Clone(m.Data)})
	c.pooled = append(c.pooled, m.Lease.buf != nil)
	c.mu.Unlock()
	m.Lease.Release()
	c.got <- struct{}{}
}

func (c *collector) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d messages arrived", len(c.msgs), n)
		}
	}
}

func startFeed(t *testing.T, nc *nats.Conn, subject string, c *collector) *Feed {
	t.Helper()
	f, err := Start(Config{NATS: nc, Subject: subject, Handle: c.handle, Lost: func(err error) { c.lost <- err }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestFeedDeliversInOrder: payloads of every size class, with and without
// headers, arrive whole and in order; those of a stream data frame's size
// come in pooled buffers, small and large ones do not.
func TestFeedDeliversInOrder(t *testing.T) {
	ns := natstest.Run(t, natsserver.Options{})
	nc := connect(t, ns.ClientURL())
	c := newCollector()
	startFeed(t, nc, "feed.*", c)
	sizes := []int{0, 1, minPooled - 1, minPooled, 30 << 10, bufSize - 2, bufSize - 1, 200 << 10}
	var sent []*nats.Msg
	for i := range 400 {
		size := sizes[i%len(sizes)]
		m := &nats.Msg{Subject: fmt.Sprintf("feed.s%d", i%7), Data: bytes.Repeat([]byte{byte(i)}, size)}
		if i%3 == 0 {
			m.Header = nats.Header{"Traceparent": []string{fmt.Sprint(i)}}
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	c.wait(t, len(sent))
	for i, m := range sent {
		got := c.msgs[i]
		if string(got.Subject) != m.Subject || !bytes.Equal(got.Data, m.Data) {
			t.Fatalf("message %d: %s with %d bytes, want %s with %d", i, got.Subject, len(got.Data), m.Subject, len(m.Data))
		}
		if m.Header.Get("Traceparent") != got.Header.Get("Traceparent") {
			t.Fatalf("message %d: header %v, want %v", i, got.Header, m.Header)
		}
		// The pooled buffer also holds the headers and the closing CRLF.
		total := len(m.Data)
		if m.Header != nil {
			total += len(encodeHeader(m.Header))
		}
		want := total >= minPooled && total <= MaxPooled
		if c.pooled[i] != want {
			t.Fatalf("message %d of %d bytes: pooled %v", i, total, c.pooled[i])
		}
	}
}

// encodeHeader is the header block NATS sends for h.
func encodeHeader(h nats.Header) []byte {
	var b strings.Builder
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// TestFeedAuthenticates with the token the followed connection uses,
// given as an option or in its URL, and with a user and password.
func TestFeedAuthenticates(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		ns := natstest.Run(t, natsserver.Options{Authorization: "s3cret"})
		for _, nc := range []*nats.Conn{
			connect(t, ns.ClientURL(), nats.Token("s3cret")),
			connect(t, strings.Replace(ns.ClientURL(), "nats://", "nats://s3cret@", 1)),
		} {
			c := newCollector()
			startFeed(t, nc, "auth", c)
			nc.Publish("auth", []byte("hi"))
			c.wait(t, 1)
		}
	})
	t.Run("user", func(t *testing.T) {
		ns := natstest.Run(t, natsserver.Options{Username: "edge", Password: "pw"})
		nc := connect(t, ns.ClientURL(), nats.UserInfo("edge", "pw"))
		c := newCollector()
		startFeed(t, nc, "auth", c)
		nc.Publish("auth", []byte("hi"))
		c.wait(t, 1)
	})
	t.Run("nkey", func(t *testing.T) {
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		ns := natstest.Run(t, natsserver.Options{Nkeys: []*natsserver.NkeyUser{{Nkey: pub}}})
		nc := connect(t, ns.ClientURL(), nats.Nkey(pub, kp.Sign))
		c := newCollector()
		startFeed(t, nc, "auth", c)
		nc.Publish("auth", []byte("hi"))
		c.wait(t, 1)
		// Another key's signature is refused.
		other, _ := nkeys.CreateUser()
		nc.Opts.SignatureCB = other.Sign
		if _, err := Start(Config{NATS: nc, Subject: "auth", Handle: func(Msg) {}, Lost: func(error) {}}); err == nil {
			t.Fatal("a nonce signed by another key was accepted")
		}
	})
	t.Run("refused", func(t *testing.T) {
		ns := natstest.Run(t, natsserver.Options{Authorization: "s3cret"})
		nc := connect(t, ns.ClientURL(), nats.Token("s3cret"))
		nc.Opts.Token = "wrong"
		if _, err := Start(Config{NATS: nc, Subject: "auth", Handle: func(Msg) {}, Lost: func(error) {}}); err == nil {
			t.Fatal("a wrong token was accepted")
		}
	})
}

// TestFeedFollowsInProcess: a connection made in the server's process is
// followed there; the server listens on no port the feed could dial.
func TestFeedFollowsInProcess(t *testing.T) {
	ns := natstest.Run(t, natsserver.Options{DontListen: true})
	nc := connect(t, "nats://embedded", nats.InProcessServer(ns))
	c := newCollector()
	startFeed(t, nc, "inproc", c)
	want := bytes.Repeat([]byte{7}, 30<<10)
	if err := nc.Publish("inproc", want); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1)
	if !bytes.Equal(c.msgs[0].Data, want) || !c.pooled[0] {
		t.Fatalf("got %d bytes, pooled %v", len(c.msgs[0].Data), c.pooled[0])
	}
}

// TestFeedRedials: when the server goes away the feed reports the loss and
// is not up, and once the server is back it receives again.
func TestFeedRedials(t *testing.T) {
	ns := natstest.Run(t, natsserver.Options{})
	port := ns.Addr().(*net.TCPAddr).Port
	nc := connect(t, ns.ClientURL())
	c := newCollector()
	f := startFeed(t, nc, "redial", c)
	if !f.Up() {
		t.Fatal("not up once started")
	}
	nc.Publish("redial", []byte("before"))
	c.wait(t, 1)
	ns.Shutdown()
	ns.WaitForShutdown()
	select {
	case <-c.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the loss went unreported")
	}
	if f.Up() {
		t.Fatal("up while the server is away")
	}
	natstest.Run(t, natsserver.Options{Port: port})
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc.Publish("redial", []byte("after"))
		select {
		case <-c.got:
			if !f.Up() {
				t.Fatal("receiving but not up")
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing arrived after the server came back")
		}
	}
}

// TestFeedCloseReportsNoLoss: closing the feed ends its goroutine without
// calling Lost.
func TestFeedCloseReportsNoLoss(t *testing.T) {
	ns := natstest.Run(t, natsserver.Options{})
	nc := connect(t, ns.ClientURL())
	c := newCollector()
	f := startFeed(t, nc, "close", c)
	f.Close()
	select {
	case err := <-c.lost:
		t.Fatalf("closing reported a loss: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestFeedTLS: against a server that requires TLS, the feed dials with the
// followed connection's TLS settings.
func TestFeedTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	ns := natstest.Run(t, natsserver.Options{TLS: true, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}})
	nc := connect(t, strings.Replace(ns.ClientURL(), "nats://", "tls://", 1), nats.Secure(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}))
	c := newCollector()
	startFeed(t, nc, "tls", c)
	nc.Publish("tls", []byte("hi"))
	c.wait(t, 1)
	if string(c.msgs[0].Data) != "hi" {
		t.Fatalf("got %q", c.msgs[0].Data)
	}
}
