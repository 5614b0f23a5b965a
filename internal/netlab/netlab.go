// Package netlab builds small networks of Linux network namespaces for
// tests: an "internet" namespace, and hosts behind NAT routers of the kinds
// RFC 4787 tells apart, made with veth pairs and nftables. Everything it
// makes carries the lab's name and is removed when the test ends, whether
// it passed or failed. It needs root, ip and nft; without them a test skips
// with the reason.
package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// NAT kinds.
type NAT int

const (
	// Open is no NAT: the host has a public address.
	Open NAT = iota
	// Consistent maps one inside address and port to one outside port for
	// every destination (endpoint-independent mapping): nft masquerade.
	Consistent
	// Random maps each destination to a new outside port: nft masquerade
	// fully-random.
	Random
)

func (n NAT) String() string { return [...]string{"open", "consistent", "random"}[n] }

// Lab is a set of namespaces made for one test.
type Lab struct {
	t      testing.TB
	name   string
	hosts  int
	nsList []string
}

// Host is a namespace with an address.
type Host struct {
	lab  *Lab
	NS   string
	Addr netip.Addr // the host's own address

	router string // the NAT's namespace, "" for an open host
	lan    int    // the LAN's number, 192.168.lan.0/24
}

var labSeq atomic.Int32

// Require skips t unless namespaces and nftables can be used here.
func Require(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("netlab: network namespaces are Linux's")
	}
	if os.Geteuid() != 0 {
		t.Skip("netlab: needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("netlab: %s not installed (Debian: iproute2, nftables)", tool)
		}
	}
}

// New makes an empty lab with an internet namespace at 45.77.0.1/16. The
// internet is a public range, not a private or reserved one, because
// peers treat private addresses as a LAN they might share; the lab's
// namespaces have no route out, so nothing leaves them.
func New(t testing.TB) (*Lab, *Host) {
	t.Helper()
	Require(t)
	l := &Lab{t: t, name: fmt.Sprintf("nl%d%d", os.Getpid()%10000, labSeq.Add(1))}
	t.Cleanup(l.teardown)
	inet := l.namespace("inet")
	l.run(inet, "ip", "link", "add", "br0", "type", "bridge")
	l.run(inet, "ip", "addr", "add", "45.77.0.1/16", "dev", "br0")
	l.run(inet, "ip", "link", "set", "br0", "up")
	return l, &Host{lab: l, NS: inet, Addr: netip.MustParseAddr("45.77.0.1")}
}

func (l *Lab) namespace(role string) string {
	ns := l.name + role
	l.run("", "ip", "netns", "add", ns)
	l.nsList = append(l.nsList, ns)
	l.run(ns, "ip", "link", "set", "lo", "up")
	return ns
}

// run runs a command in ns (the root namespace when empty) and fails the
// test on error.
func (l *Lab) run(ns string, args ...string) {
	l.t.Helper()
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netlab: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (l *Lab) teardown() {
	for _, ns := range l.nsList {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// AddHost adds a host on the internet behind a NAT of the given kind. An
// open host sits on the internet bridge; otherwise a router namespace NATs
// a private LAN (192.168.n.0/24) onto its internet address.
func (l *Lab) AddHost(kind NAT) *Host {
	l.t.Helper()
	l.hosts++
	n := l.hosts
	inet := l.name + "inet"
	wan := fmt.Sprintf("45.77.%d.1", n)
	if kind == Open {
		h := l.namespace(fmt.Sprintf("h%d", n))
		l.link(inet, h, "br0", wan+"/16")
		l.run(h, "ip", "route", "add", "default", "via", "45.77.0.1")
		return &Host{lab: l, NS: h, Addr: netip.MustParseAddr(wan)}
	}
	r := l.namespace(fmt.Sprintf("r%d", n))
	h := l.namespace(fmt.Sprintf("h%d", n))
	l.link(inet, r, "br0", wan+"/16")
	l.run(r, "ip", "route", "add", "default", "via", "45.77.0.1")
	// The LAN is a bridge in the router, so that neighbours can join it.
	lanR := fmt.Sprintf("192.168.%d.1", n)
	l.run(r, "ip", "link", "add", "lan", "type", "bridge")
	l.run(r, "ip", "addr", "add", lanR+"/24", "dev", "lan")
	l.run(r, "ip", "link", "set", "lan", "up")
	l.run(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	masq := "masquerade"
	if kind == Random {
		masq = "masquerade fully-random"
	}
	l.run(r, "nft", "add table ip nat")
	l.run(r, "nft", "add chain ip nat post { type nat hook postrouting priority 100 ; }")
	l.run(r, "nft", fmt.Sprintf("add rule ip nat post oifname \"w%d\" %s", n, masq))
	// Unsolicited packets from the internet are dropped before conntrack
	// confirms an entry for them, as a home router drops them: otherwise
	// the first punch from a peer leaves an entry that makes masquerade
	// pick another port for our own punch back, and no holepunch through
	// two NATs could work.
	l.run(r, "nft", "add table ip filter")
	l.run(r, "nft", "add chain ip filter input { type filter hook input priority 0 ; }")
	l.run(r, "nft", fmt.Sprintf("add rule ip filter input iifname \"w%d\" ct state new drop", n))
	return l.joinLAN(r, n, h)
}

// AddNeighbour adds a host on the LAN of h, behind the same NAT.
func (l *Lab) AddNeighbour(h *Host) *Host {
	l.t.Helper()
	if h.router == "" {
		l.t.Fatalf("netlab: %s is on no LAN", h.NS)
	}
	l.hosts++
	return l.joinLAN(h.router, h.lan, l.namespace(fmt.Sprintf("h%d", l.hosts)))
}

// joinLAN links host namespace ns to the LAN bridge of router r, whose
// LAN is number lan; the host's address is 192.168.lan.(1 + its number).
func (l *Lab) joinLAN(r string, lan int, ns string) *Host {
	a, b := fmt.Sprintf("%sl%d", l.name, l.hosts), fmt.Sprintf("%sm%d", l.name, l.hosts)
	addr := fmt.Sprintf("192.168.%d.%d", lan, 1+l.hosts)
	l.run("", "ip", "link", "add", a, "type", "veth", "peer", "name", b)
	l.run("", "ip", "link", "set", a, "netns", r)
	l.run("", "ip", "link", "set", b, "netns", ns)
	l.run(r, "ip", "link", "set", a, "master", "lan")
	l.run(r, "ip", "link", "set", a, "up")
	l.run(ns, "ip", "addr", "add", addr+"/24", "dev", b)
	l.run(ns, "ip", "link", "set", b, "up")
	l.run(ns, "ip", "route", "add", "default", "via", fmt.Sprintf("192.168.%d.1", lan))
	return &Host{lab: l, NS: ns, Addr: netip.MustParseAddr(addr), router: r, lan: lan}
}

// link connects ns to the internet bridge with address addr.
func (l *Lab) link(inet, ns, bridge, addr string) {
	n := l.hosts
	a, b := fmt.Sprintf("%sb%d", l.name, n), fmt.Sprintf("w%d", n)
	// The peer is made in ns: its short name is unique only there.
	l.run("", "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns)
	l.run("", "ip", "link", "set", a, "netns", inet)
	l.run(inet, "ip", "link", "set", a, "master", bridge)
	l.run(inet, "ip", "link", "set", a, "up")
	l.run(ns, "ip", "addr", "add", addr, "dev", b)
	l.run(ns, "ip", "link", "set", b, "up")
}

// ListenUDP opens a UDP socket inside the host's namespace. The socket
// stays in that namespace; the calling goroutine's thread is switched there
// only while it is created.
func (h *Host) ListenUDP(port uint16) (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := h.Do(func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.Addr, port)))
		conn = c
		return err
	})
	return conn, err
}

// Do runs fn on a thread inside the host's namespace: sockets fn opens stay
// in it.
func (h *Host) Do(fn func() error) error { return inNamespace(h.NS, fn) }

// Command runs a program inside the host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}
