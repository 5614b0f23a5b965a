package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

// TestWorkerKilled: kill -9 the worker under a streaming client; the
// client's stream fails within 5 s, and a client connecting afresh through
// the same edge is served by the other worker.
func TestWorkerKilled(t *testing.T) {
	interop.Require(t)
	boot, echoKey := startJSEcho(t, strings.Repeat("ef", 32))
	cl := newCluster(t, boot, "")
	cl.worker("w1")
	cl.worker("w2")
	ws := cl.edge("e1", 2)

	connect := func() (*relay.Client, noise.KeyPair) {
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tr, err := relay.DialWebSocket(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: kp, Custodial: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, kp
	}
	c, kp := connect()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := c.Connect(ctx, echoKey)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the stream busy, then kill the worker that holds it.
	go func() {
		chunk := make([]byte, 16<<10)
		for {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	got := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn)
		got <- err
	}()
	time.Sleep(500 * time.Millisecond)
	holder := routing.Pick(kp.Public[:], []string{"w1", "w2"})
	cl.kill(holder)
	killed := time.Now()
	select {
	case err := <-got:
		t.Logf("stream ended %v after the kill: %v", time.Since(killed).Round(time.Millisecond), err)
		if err == nil {
			t.Fatal("the stream ended cleanly; a lost worker must show as an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no stream error within 5 s of the worker's death")
	}

	c2, _ := connect()
	conn2, err := c2.Connect(ctx, echoKey)
	if err != nil {
		t.Fatalf("a new connection after the worker's death: %v", err)
	}
	data := make([]byte, 256<<10)
	rand.Read(data)
	go conn2.Write(data)
	back := make([]byte, len(data))
	if _, err := io.ReadFull(conn2, back); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("echo on the surviving worker: %v", err)
	}
}
