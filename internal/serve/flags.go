package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/dhtrelay/dht-relay/hyperdht"
)

// ClientFlags says where clients are taken: the same flags, defaults and
// meaning on the all-in-one binary and the edge.
type ClientFlags struct {
	host      string
	port      int
	cert, key string
	tcpPort   int
	contact   string
	acme      ACMEFlags
}

// RegisterClient registers --host, --port, --cert, --key and --tcp-port.
func RegisterClient(fs *flag.FlagSet) *ClientFlags {
	c := &ClientFlags{}
	fs.IntVar(&c.port, "port", 49443, "WebSocket port (0 picks a free one)")
	fs.StringVar(&c.host, "host", "0.0.0.0", "address to listen on")
	fs.StringVar(&c.cert, "cert", "", "TLS certificate file (with --key), reloaded when it changes")
	fs.StringVar(&c.key, "key", "", "TLS key file (with --cert)")
	fs.IntVar(&c.tcpPort, "tcp-port", -1, "serve the TCP transport on this port (0 picks a free one; off unless given, or -1)")
	fs.StringVar(&c.contact, "contact", "", "who to tell of abuse, shown on the status page at /")
	c.acme.register(fs)
	return c
}

// Contact is --contact.
func (c *ClientFlags) Contact() string { return c.contact }

// Listeners checks the flags and returns the listeners they describe.
func (c *ClientFlags) Listeners(log *slog.Logger) (ClientListeners, error) {
	if (c.cert == "") != (c.key == "") {
		return ClientListeners{}, ErrTLSPair
	}
	if c.cert != "" && c.acme.hosts != "" {
		return ClientListeners{}, errors.New("--cert and --acme-host: give one")
	}
	if c.port < 0 || c.port > 65535 || c.tcpPort < -1 || c.tcpPort > 65535 {
		return ClientListeners{}, errors.New("--port and --tcp-port take a port number")
	}
	acme, err := c.acme.manager(log)
	if err != nil {
		return ClientListeners{}, err
	}
	return ClientListeners{Host: c.host, Port: c.port, Cert: c.cert, Key: c.key, ACME: acme, Logger: log, TCP: c.tcpPort >= 0, TCPPort: c.tcpPort}, nil
}

// DHTFlags says how a DHT node starts: the same flags on the all-in-one
// binary and the worker.
type DHTFlags struct {
	bootstrap string
	host      string
	port      int
}

// RegisterDHT registers --bootstrap, --dht-host and --dht-port.
func RegisterDHT(fs *flag.FlagSet) *DHTFlags {
	d := &DHTFlags{}
	fs.StringVar(&d.bootstrap, "bootstrap", PublicBootstrap, "HyperDHT bootstrap nodes, HOST:PORT[,HOST:PORT...]")
	fs.StringVar(&d.host, "dht-host", "0.0.0.0", "IPv4 address the DHT node binds")
	fs.IntVar(&d.port, "dht-port", 0, "UDP port of the DHT node (0 picks a free one)")
	return d
}

// ErrDHTHostIPv4 means --dht-host is not an IPv4 address: HyperDHT's
// messages carry peers' addresses as IPv4 only.
var ErrDHTHostIPv4 = errors.New("--dht-host must be an IPv4 address: HyperDHT carries IPv4 addresses only")

// Start starts the DHT node the flags describe (StartNode).
func (d *DHTFlags) Start(ctx context.Context, log *slog.Logger) (*hyperdht.Node, error) {
	bind, err := netip.ParseAddr(d.host)
	if err != nil {
		return nil, fmt.Errorf("--dht-host: %w", err)
	}
	if !bind.Unmap().Is4() {
		return nil, ErrDHTHostIPv4
	}
	if d.port < 0 || d.port > 65535 {
		return nil, errors.New("--dht-port takes a port number")
	}
	boot, err := ParseBootstrap(ctx, d.bootstrap)
	if err != nil {
		return nil, err
	}
	return StartNode(ctx, boot, bind.Unmap(), uint16(d.port), log)
}
