// Command echo is a HyperDHT echo server and client by public key, built on
// the hyperdht package.
//
//	echo -listen                    # prints the server's public key, echoes
//	echo -connect PUBLICKEY hello   # sends "hello", prints the echo
//
// Both join the network through -bootstrap (the public HyperDHT bootstrap
// nodes by default). The server asks to become a persistent node, which it
// does if the network can reach it unasked; either side may sit behind a
// NAT, which the connection holepunches as JS hyperdht does.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/noise"
)

// publicBootstrap are the HyperDHT bootstrap nodes.
const publicBootstrap = "88.99.3.86:49737,142.93.90.113:49737,138.68.147.8:49737"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	bootstrap := fs.String("bootstrap", publicBootstrap, "bootstrap nodes, HOST:PORT[,HOST:PORT...]")
	host := fs.String("host", "0.0.0.0", "address to bind")
	listen := fs.Bool("listen", false, "run the echo server")
	seed := fs.String("seed", "", "hex seed of the server key pair (default: random)")
	connect := fs.String("connect", "", "public key (hex) of the server to send to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var boot []netip.AddrPort
	for _, b := range strings.Split(*bootstrap, ",") {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(b))
		if err != nil {
			return fmt.Errorf("bad -bootstrap %q: %w", b, err)
		}
		boot = append(boot, ap)
	}
	bind, err := netip.ParseAddr(*host)
	if err != nil {
		return fmt.Errorf("bad -host: %w", err)
	}
	node, err := hyperdht.New(hyperdht.Config{DHT: dhtrpc.Config{Bootstrap: boot, Host: bind, Persistent: *listen}})
	if err != nil {
		return err
	}
	defer node.Close()
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := node.Bootstrap(jctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	switch {
	case *listen:
		return serve(ctx, node, *seed, out)
	case *connect != "":
		return send(ctx, node, *connect, strings.Join(fs.Args(), " "), out)
	}
	return errors.New("give -listen or -connect PUBLICKEY")
}

func serve(ctx context.Context, node *hyperdht.Node, seedHex string, out io.Writer) error {
	kp, err := noise.GenerateKeyPair(randReader{})
	if seedHex != "" {
		var s [32]byte
		b, err := hex.DecodeString(seedHex)
		if err != nil || len(b) != 32 {
			return errors.New("-seed must be 64 hex digits")
		}
		copy(s[:], b)
		kp = noise.KeyPairFromSeed(s)
	} else if err != nil {
		return err
	}
	srv, err := node.Listen(ctx, hyperdht.ServerConfig{KeyPair: &kp})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer srv.Close()
	fmt.Fprintf(out, "listening on %x\n", kp.Public)
	for {
		c, err := srv.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func send(ctx context.Context, node *hyperdht.Node, keyHex, msg string, out io.Writer) error {
	b, err := hex.DecodeString(keyHex)
	if err != nil || len(b) != 32 {
		return errors.New("-connect needs a 64-hex-digit public key")
	}
	kp, err := noise.GenerateKeyPair(randReader{})
	if err != nil {
		return err
	}
	c, err := node.Connect(ctx, [32]byte(b), hyperdht.ClientConfig{KeyPair: &kp})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(c, echo); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s\n", echo)
	return nil
}
