package main

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/noise"
)

// TestWorkerCutOffFromNATS: a worker that loses NATS for longer than
// routing.ResyncWithin while its edge keeps it ends its sessions, and the
// edge, which lost nothing and so never asks, hears it by gossip and ends
// them too: a stream open on the worker ends with an error instead of
// waiting for goodbyes that cannot come. While cut off the worker is not
// live to the edge; once back, it serves new clients again.
func TestWorkerCutOffFromNATS(t *testing.T) {
	interop.Require(t)
	boot, echoKey := startJSEcho(t, interop.RandomSeed())
	c := newCluster(t, boot, "")
	p := startCutProxy(t, c.nats)
	direct := c.nats
	c.nats = p.url // the worker's way to NATS, and only its
	c.worker("w1")
	c.nats = direct
	c.edge("e1", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	kp, _ := noise.GenerateKeyPair(rand.Reader)
	client := dialClient(t, ctx, c.ws["e1"], kp, true)
	if err := echoOnce(ctx, client, echoKey); err != nil {
		t.Fatal(err)
	}
	conn, err := client.Connect(ctx, echoKey)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn)
		ended <- err
	}()

	cut := time.Now()
	p.cut()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the stream on the cut-off worker ended as if its peer had closed it")
		}
		t.Logf("the stream on the cut-off worker ended after %v: %v", time.Since(cut).Round(time.Millisecond), err)
	case <-time.After(routing.ResyncWithin + 20*time.Second):
		t.Fatal("a stream on a worker cut off from NATS went on waiting, neither its data nor an error")
	}
	c.waitWorkers("e1", 0)

	p.restore()
	c.waitWorkers("e1", 1)
	back := time.Now()
	for {
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		fresh := dialClient(t, ctx, c.ws["e1"], kp, true)
		err := echoOnce(ctx, fresh, echoKey)
		fresh.Close()
		if err == nil {
			break
		}
		if time.Since(back) > 20*time.Second {
			t.Fatalf("no new client served within 20 s of the worker's NATS coming back: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestEdgeCutOffFromNATS: an edge that loses NATS for longer than
// routing.ResyncWithin ends its clients' sessions; the worker, which lost
// nothing and so never asks, hears it by gossip and ends its side of them
// too (their servers enter their grace), instead of holding them for
// goodbyes that cannot come.
func TestEdgeCutOffFromNATS(t *testing.T) {
	interop.Require(t)
	boot, echoKey := startJSEcho(t, interop.RandomSeed())
	c := newCluster(t, boot, "")
	c.worker("w1")
	p := startCutProxy(t, c.nats)
	direct := c.nats
	c.nats = p.url // the edge's way to NATS, and only its
	c.edge("e1", 1)
	c.nats = direct
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	kp, _ := noise.GenerateKeyPair(rand.Reader)
	client := dialClient(t, ctx, c.ws["e1"], kp, true)
	if err := echoOnce(ctx, client, echoKey); err != nil {
		t.Fatal(err)
	}
	if got := metric(c.metrics["w1"], "dhtrelay_sessions"); got != "1" {
		t.Fatalf("the worker holds %s sessions, not the client's one", got)
	}
	cut := time.Now()
	p.cut()
	for metric(c.metrics["w1"], "dhtrelay_sessions") != "0" {
		if time.Since(cut) > routing.ResyncWithin+20*time.Second {
			t.Fatal("the worker still holds the session of an edge cut off from NATS")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the worker ended the cut-off edge's session after %v", time.Since(cut).Round(time.Millisecond))
}

// cutProxy forwards TCP connections to a NATS server until cut: then it
// drops those it carries and every new one at once, as a network that no
// longer reaches the server would, until restored.
type cutProxy struct {
	url string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func startCutProxy(t *testing.T, natsURL string) *cutProxy {
	t.Helper()
	target := natsURL[len("nats://"):]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{url: "nats://" + ln.Addr().String()}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	go func() { // ends as the listener closes
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				in.Close()
				out.Close()
				continue
			}
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
