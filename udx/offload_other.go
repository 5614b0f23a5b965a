//go:build !linux

package udx

import (
	"net/netip"
	"syscall"
)

func newDatagramReader(s *Socket) datagramReader {
	return &singleReader{conn: s.conn, calls: &s.u.count.recvCalls}
}

// slotBudget is the Linux reader's bound on read slots; one datagram a
// call needs none.
type slotBudget struct{}

func (slotBudget) counts() (held, refused uint64) { return 0, 0 }

func enableOffload(syscall.RawConn) (gso, gro bool) { return false, false }
func groSegmentSize([]byte) int                     { return 0 }
func gsoControl(b []byte, _ int) []byte             { return b }

var oobSize = 0

// ttlControl is empty where the TTL cannot be set per datagram: the
// datagram leaves with the default TTL.
func ttlControl(int) []byte { return nil }

// rawSender is Linux's: elsewhere packets go through the net package.
type rawSender struct{}

func newRawSender(syscall.RawConn) *rawSender { return nil }

func (*rawSender) send([][]byte, []byte, netip.AddrPort) (bool, error) { return false, nil }
