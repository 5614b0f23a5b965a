package dhtrpc

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/dhtrelay/dht-relay/udx"
)

// NewSocket binds one more socket for the node, as hyperdht's socket pool
// does for holepunching: RPC messages on it are the node's like those on
// its own sockets, and datagrams of at most one byte (holepunch pings) go
// to onPunch with the socket they came in on. The caller closes the
// socket.
func (d *DHT) NewSocket(onPunch func(s *udx.Socket, from netip.AddrPort)) (*udx.Socket, error) {
	return d.bind(0, onPunch)
}

// bind binds a socket of the node on its host and port (0 picks one);
// onPunch, if not nil, takes the datagrams too short to be messages.
// Handlers learn their socket once Listen returns.
func (d *DHT) bind(port uint16, onPunch func(*udx.Socket, netip.AddrPort)) (*udx.Socket, error) {
	host := d.cfg.Host
	if !host.IsValid() {
		host = netip.IPv4Unspecified()
	}
	var ref atomic.Pointer[udx.Socket]
	s, err := d.u.Listen(netip.AddrPortFrom(host, port), func(p []byte, from netip.AddrPort) {
		if len(p) <= 1 && onPunch != nil {
			if s := ref.Load(); s != nil {
				onPunch(s, from)
			}
			return
		}
		d.handle(p, from, ref.Load())
	})
	if err != nil {
		return nil, err
	}
	ref.Store(s)
	return s, nil
}

// RequestVia sends one request from socket, one of the node's, and waits
// for its response, whose To is where the responder saw the socket.
func (d *DHT) RequestVia(ctx context.Context, socket *udx.Socket, to netip.AddrPort, command uint64, target *[IDSize]byte, value []byte) (*Response, error) {
	r, err := d.request(ctx, to, false, command, target, value, nil, socket)
	return r.res, err
}

// PingVia pings to from socket; the response's To is where to saw the
// socket, a sample of the socket's NAT mapping.
func (d *DHT) PingVia(ctx context.Context, socket *udx.Socket, to netip.AddrPort) (*Response, error) {
	r, err := d.request(ctx, to, true, CmdPing, nil, nil, nil, socket)
	return r.res, err
}

// RecentNodes returns up to n addresses from the routing table, the most
// recently heard from first.
func (d *DHT) RecentNodes(n int) []netip.AddrPort {
	d.mu.Lock()
	var all []Contact
	for _, row := range d.table.rows {
		all = append(all, row...)
	}
	d.mu.Unlock()
	slices.SortFunc(all, func(a, b Contact) int { return b.seen.Compare(a.seen) })
	out := make([]netip.AddrPort, 0, min(n, len(all)))
	for _, c := range all[:min(n, len(all))] {
		out = append(out, c.Addr)
	}
	return out
}
