package udx

import (
	"net/netip"
	"slices"
	"time"
)

// onPacket handles a packet addressed to this stream on sock. It reports
// false when the packet is not the stream's to take (it then goes to the
// socket's raw handler).
func (s *Stream) onPacket(sock *Socket, p []byte, from netip.AddrPort) bool {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false
	}
	// The firewall runs first, relaying or not: a relay's stream learns
	// where its peer is from the peer's first packet, as in libudx.
	if s.socket != sock {
		fw := s.firewall
		if fw == nil {
			s.mu.Unlock()
			return s.socket != nil
		}
		s.mu.Unlock()
		if !fw(sock, from) {
			return true
		}
		s.mu.Lock()
		// Accepted: the hook connected the stream to this socket, or it
		// left it unconnected for now, in which case data is still taken
		// in (and acked once the stream connects), as libudx does; or the
		// stream stays on another path and the packet comes from one it
		// left, such as the relay a stream moved off, over which the
		// peer may still resend what it sent before it moved too.
		if s.err != nil {
			s.mu.Unlock()
			return true
		}
	}
	if dst := s.relay; dst != nil {
		s.mu.Unlock()
		dst.forward(p)
		return true
	}
	h, _ := decodeHeader(p)
	body := p[HeaderSize:]
	var sacks [MaxSACKRanges]sackRange
	var ranges []sackRange
	if h.flags&FlagSACK != 0 {
		ranges = decodeSACK(body, sacks[:0])
	}
	if int(h.dataOffset) > len(body) {
		s.mu.Unlock()
		return true
	}
	payload := body[h.dataOffset:]

	s.sendRwnd = int(h.rwnd)
	s.onAck(h.ack, ranges, sock.readAt)

	needAck := h.flags&FlagHeartbeat != 0
	if h.flags&(FlagData|FlagEnd) == 0 {
		s.u.count.acksReceived.Add(1)
	}
	if h.flags&(FlagData|FlagEnd) != 0 {
		s.onData(h.seq, h.flags, payload)
		needAck = !s.delayAck(h.seq, h.flags, sock.readAt)
	}
	var msgFn func([]byte)
	if h.flags&FlagMessage != 0 {
		msgFn = s.onMessage
	}
	reset := h.flags&FlagDestroy != 0 && seqLessEq(s.ack, h.seq)
	if !reset {
		// What this packet lets the stream send leaves at the end of the
		// read it came in, with what the read's other packets let it
		// send: acks arrive in runs, and each releases a packet or two,
		// which alone would be a send each.
		if !s.flushOwed {
			s.flushOwed = true
			sock.queueFlush(s)
		}
		if needAck && !s.ackPending {
			s.ackPending = true
			sock.queueAck(s)
		}
		s.checkFinished()
	}
	s.mu.Unlock()
	if msgFn != nil {
		msgFn(payload)
	}
	if reset {
		s.fail(ErrReset)
	}
	return true
}

// forward relays a packet verbatim to this stream's remote, with the id
// rewritten to the remote's.
func (s *Stream) forward(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.socket == nil || s.err != nil {
		return
	}
	b := append(s.wbuf[:0], p...)
	s.wbuf = b[:0]
	PutStreamID(b, s.remoteID)
	s.socket.write(b, s.remote)
}

// ackDelay bounds how long a data packet's ack may wait for the next one.
const ackDelay = time.Millisecond

// The first quickAcks packets of a run of data are acked as they are
// read (one ack for a read's packets), while the sender's window opens
// (libudx starts at 10 packets and grows it as acks come back), and as a
// request or a short message wants; after them up to ackEvery packets
// take one ack: a sender at speed has that many and more in flight, and
// each ack is a send here and a receive there (udx-native sent 5-6
// packets for each ack when every read was acked, which on loopback is a
// read of about that many). A run ends when no data came for ackDelay.
const (
	quickAcks = 128
	ackEvery  = 16
)

// delayAck reports whether the ack for the data packet seq, read at at,
// may wait: within a run under way, in-order packets with nothing missing
// before them are acked ackEvery at a time, or after ackDelay, as TCP
// delays acks; a gap, a duplicate or an end is acked at once. Acks are
// the receiver's largest cost on a fast path. mu is held.
func (s *Stream) delayAck(seq uint32, flags byte, at time.Time) bool {
	if at.Sub(s.lastData) > ackDelay {
		s.run = 0
	}
	s.lastData = at
	s.run++
	if s.run <= quickAcks || flags&FlagEnd != 0 || seq+1 != s.ack || seqLess(s.ack, s.oooMax) {
		return false
	}
	s.unacked++
	if s.unacked >= ackEvery {
		return false
	}
	if s.unacked == 1 {
		if s.ackTimer == nil {
			s.ackTimer = time.AfterFunc(ackDelay, s.onAckTimer)
		} else {
			s.ackTimer.Reset(ackDelay)
		}
	}
	return true
}

func (s *Stream) onAckTimer() {
	s.mu.Lock()
	if s.unacked > 0 && s.err == nil && s.socket != nil {
		s.sendAck()
	}
	s.mu.Unlock()
}

// onData stores a DATA or END packet and delivers what is now in order.
func (s *Stream) onData(seq uint32, flags byte, payload []byte) {
	if seqLess(seq, s.ack) || s.remoteEnded {
		return // a retransmission of something delivered; the ack answers it
	}
	off := seq - s.ack
	s.stats.PacketsReceived++
	s.u.count.dataReceived.Add(1)
	// A packet is taken while any room is left, so a sender that sends a
	// full packet into a nearly shut window loses nothing. The packet the
	// stream waits for is taken even into a full buffer while bytes are
	// held out of order behind it and its reader is short of what it
	// waits for: only that packet can make those bytes readable, and
	// dropped it would be sent again and dropped for good. Each such
	// packet adds at least itself to what is readable, so they overrun
	// the buffer by less than a read's wait and a packet.
	if off >= recvRing || s.buffered >= RecvBufferSize && !s.fillsHole(off) {
		s.stats.Dropped++
		return // beyond the window: dropped, the sender retransmits
	}
	if seq == s.ack && s.oooMax == s.ack {
		// In order with nothing held out of order, the common case: the
		// bytes go straight to the read queue, no packet is kept.
		s.buffered += len(payload)
		s.deliver(payload, flags)
		s.oooMax = s.ack
		return
	}
	if s.ring == nil {
		s.ring = make([]*inPacket, recvRing)
	}
	slot := &s.ring[seq%recvRing]
	if *slot != nil && (*slot).seq == seq {
		return
	}
	*slot = &inPacket{seq: seq, flags: flags, data: append([]byte(nil), payload...)}
	s.buffered += len(payload)
	if seqLess(s.oooMax, seq+1) {
		s.oooMax = seq + 1
	}
	for {
		in := s.ring[s.ack%recvRing]
		if in == nil || in.seq != s.ack {
			break
		}
		s.ring[s.ack%recvRing] = nil
		if s.deliver(in.data, in.flags) {
			break
		}
	}
	if seqLess(s.oooMax, s.ack) {
		s.oooMax = s.ack
	}
}

// fillsHole reports whether a packet off past the next one due is that
// packet, with bytes held out of order behind it, while the reader is
// short of what it waits for. mu is held.
func (s *Stream) fillsHole(off uint32) bool {
	readable := s.readable.Len()
	return off == 0 && s.buffered > readable && readable < max(s.want, 1)
}

// deliver queues the next in-order packet's bytes for Read, owing its
// reader a wake, and reports whether it was the remote's END. mu is held.
func (s *Stream) deliver(data []byte, flags byte) bool {
	s.ack++
	s.readable.Push(&s.u.blocks, data)
	if flags&FlagEnd != 0 {
		s.remoteEnded = true
	}
	s.readOwed = true
	if s.unwoken += len(data); s.unwoken >= wakeEvery {
		s.wakeReader()
	}
	return s.remoteEnded
}

// wakeEvery bounds what a read's packets deliver before the stream's
// reader is woken; the rest of the read's wakes it at the read's end. A
// JS peer's reads bring a few to 32 packets, which a reader woken once
// takes in one go; a Go peer's bring up to 32 segmented runs, megabytes,
// and its reader starts on them as they come. (Alternated runs of a
// custodial download from a Go peer: 1.52 s of CPU per GB with the bound
// against 1.68 s woken at every packet, and 1.48 s against 1.51 s woken
// only at the read's end.)
const wakeEvery = 64 << 10

// wakeReader wakes the stream's reader to what was delivered, unless it
// waits for more than is readable and more may come.
func (s *Stream) wakeReader() {
	s.readOwed, s.unwoken = false, 0
	if s.readable.Len() < s.want && !s.remoteEnded {
		return
	}
	notify(s.readCh)
}

// onAck processes a cumulative ack and selective-ack ranges that arrived
// at now, when the read that brought them returned: an ack cannot have
// left its sender before the packets it acks were sent, so the read's time
// serves every ack in it, with no clock read each.
func (s *Stream) onAck(ack uint32, ranges []sackRange, now time.Time) {
	una := s.sndUna()
	var newest *outPacket
	ackedBytes := 0
	if seqLess(una, ack) && seqLessEq(ack, s.sndNxt) {
		for s.outHead < len(s.out) && seqLess(s.out[s.outHead].seq, ack) {
			p := s.out[s.outHead]
			s.out[s.outHead] = nil
			s.outHead++
			if p.inflight {
				s.inflight -= p.size()
			}
			if !p.sacked {
				ackedBytes += p.size()
				s.rate.onDelivered(p, now)
			}
			s.queued -= p.size()
			if p.flags&FlagEnd != 0 {
				s.endAcked = true
			}
			s.probeDelivered(p)
			if newest != nil {
				s.recycle(newest)
			}
			newest = p
		}
		if s.outHead > 1024 && s.outHead*2 > len(s.out) {
			s.out = append(s.out[:0], s.out[s.outHead:]...)
			s.outHead = 0
		}
		s.retries = 0
		notify(s.writeCh)
	}
	var hi *outPacket
	// A receiver names its ranges again at every ack, so what the last
	// ack's ranges held, all sacked since, is stepped over, not walked.
	walked := s.sackSpare[:0]
	for _, r := range ranges {
		// Clamp to what is outstanding: a range may claim anything.
		lo, hiSeq := r.start, r.end
		if seqLess(lo, s.sndUna()) {
			lo = s.sndUna()
		}
		if seqLess(s.sndNxt, hiSeq) {
			hiSeq = s.sndNxt
		}
		q := lo
		for seqLess(q, hiSeq) {
			if end, ok := s.sackedBefore(q); ok {
				q = end
				if seqLess(hiSeq, q) {
					q = hiSeq
				}
				continue
			}
			p := s.outAt(q)
			if p == nil || p.tx == 0 {
				break
			}
			q++
			if p.sacked {
				continue
			}
			p.sacked = true
			s.probeDelivered(p)
			if p.inflight {
				s.inflight -= p.size()
				p.inflight = false
			}
			ackedBytes += p.size()
			s.rate.onDelivered(p, now)
			if hi == nil || seqLess(hi.seq, p.seq) {
				hi = p
			}
		}
		if seqLess(lo, q) {
			walked = append(walked, sackRange{lo, q})
		}
	}
	if len(ranges) == 0 {
		s.sackSeen, s.sackSpare = nil, nil // out of recovery: let both go
	} else {
		s.sackSeen, s.sackSpare = walked, s.sackSeen[:0]
	}
	for _, p := range []*outPacket{newest, hi} {
		if p != nil && p.tx == 1 {
			s.sampleRTT(now.Sub(p.sentAt))
		}
		if p != nil && p.sentAt.After(s.rackSent) {
			s.rackSent = p.sentAt
		}
	}
	if newest != nil {
		s.recycle(newest)
	}
	if s.inRecovery && !seqLess(s.sndUna(), s.recoveryEnd) {
		s.inRecovery = false
	}
	if hi != nil {
		s.detectLoss(hi, now)
	}
	if ackedBytes > 0 && !s.inRecovery {
		if s.cwnd < s.ssthresh {
			s.cwnd += ackedBytes
		} else {
			s.cwnd += max(MaxPayload*ackedBytes/s.cwnd, 1)
		}
		s.cwnd = min(s.cwnd, 2*SendBufferSize)
	}
	if ackedBytes > 0 || newest != nil {
		// Restarted once a read, by the flush every read's packets owe
		// (or by the timer itself, should it fire first), not at each of
		// a run of acks.
		s.rtoRestart = true
	}
}

// sackedBefore reports whether seq lies in a range the last ack with any
// sacked, and that range's end.
func (s *Stream) sackedBefore(seq uint32) (uint32, bool) {
	for _, r := range s.sackSeen {
		if !seqLess(seq, r.start) && seqLess(seq, r.end) {
			return r.end, true
		}
	}
	return 0, false
}

// detectLoss marks as lost every unacked packet that was sent before hi, the
// newest packet just delivered, and is three packets behind it or older than
// the reordering window. A retransmission sent after hi is not judged by it.
//
// After a loss a receiver sacks every packet behind the hole, so each ack
// would walk the whole window again; a walk of first transmissions starts
// where every packet before it was settled (sacked, lost or sent again), and
// packets sent again, which their own sending time judges, are walked from
// s.resent.
func (s *Stream) detectLoss(hi *outPacket, now time.Time) {
	window := s.srtt + s.srtt/4 + time.Millisecond
	lost := false
	due := func(p *outPacket) bool {
		return !p.sentAt.After(hi.sentAt) && (hi.seq-p.seq >= 3 || now.Sub(p.sentAt) > window)
	}
	// Sent again, in the order sent: the first that hi cannot judge, as
	// it was sent after hi, ends the walk.
	keep, i := s.resent[:0], 0
	for ; i < len(s.resent); i++ {
		r := s.resent[i]
		p := s.outAt(r.seq)
		if p == nil || p.tx != r.tx || p.sacked || p.lost {
			continue // acked, listed again as sent again since, sacked or lost
		}
		if p.sentAt.After(hi.sentAt) {
			break
		}
		if seqLess(p.seq, hi.seq) && due(p) {
			s.markLost(p)
			lost = true
			continue
		}
		keep = append(keep, r)
	}
	keep = append(keep, s.resent[i:]...)
	clear(s.resent[len(keep):])
	s.resent = keep
	if seqLess(s.lossFrom, s.sndUna()) {
		s.lossFrom = s.sndUna()
	}
	settled := true
	for seq := s.lossFrom; seqLess(seq, hi.seq); seq++ {
		p := s.outAt(seq)
		switch {
		case p.sacked || p.lost || p.tx > 1:
		case p.tx == 1 && due(p):
			s.markLost(p)
			lost = true
		default:
			settled = false
		}
		if settled {
			s.lossFrom = seq + 1
		}
	}
	if lost && !s.inRecovery {
		s.inRecovery = true
		s.recoveryEnd = s.sndNxt
		s.ssthresh = max(s.cwnd/2, 2*MaxPayload)
		s.cwnd = s.ssthresh
	}
}

// probeDelivered raises the MTU when a probe arrived in its padded form.
func (s *Stream) probeDelivered(p *outPacket) {
	if p.probe && p.tx == 1 && s.probing {
		s.mtu = s.nextMTU()
		s.probing, s.probeFails = false, 0
		s.mtuDone = s.mtu >= MaxMTU
	}
}

// probePad is the data offset that makes p's datagram one probe step
// larger than the current MTU, or 0 when p cannot be padded to it.
func (s *Stream) probePad(p *outPacket) int {
	pad := s.nextMTU() - (s.mtu - s.payloadSize()) - len(p.data)
	if pad < 1 || pad > 255 {
		return 0
	}
	return pad
}

// shouldProbe reports whether p's first transmission can probe the next MTU:
// a data packet that padding brings to the probe size, one probe at a time,
// once an RTT is known.
func (s *Stream) shouldProbe(p *outPacket) bool {
	return !s.probing && !s.mtuDone && s.srtt > 0 && p.flags == FlagData && s.probePad(p) > 0
}

// nextMTU is the size the next probe tries: a step up, capped at MaxMTU.
func (s *Stream) nextMTU() int { return min(s.mtu+mtuProbeStep, MaxMTU) }

func (s *Stream) markLost(p *outPacket) {
	if p.probe {
		// Lost in its padded form: resend plain, and maybe stop probing.
		p.probe = false
		if s.probing {
			s.probing = false
			s.probeFails++
			s.mtuDone = s.probeFails >= mtuProbeAttempts
		}
	}
	p.lost = true
	if p.inflight {
		s.inflight -= p.size()
		p.inflight = false
	}
	s.retx = append(s.retx, p.seq)
}

func (s *Stream) sndUna() uint32 {
	if s.outHead < len(s.out) {
		return s.out[s.outHead].seq
	}
	return s.seq
}

func (s *Stream) outAt(seq uint32) *outPacket {
	i := int(int32(seq - s.sndUna()))
	if i < 0 || s.outHead+i >= len(s.out) {
		return nil
	}
	return s.out[s.outHead+i]
}

// flush sends lost packets again and new packets while the congestion and
// receive windows allow.
func (s *Stream) flush() {
	if s.socket == nil || s.err != nil {
		return
	}
	if len(s.retx) == 0 && !seqLess(s.sndNxt, s.seq) {
		// Nothing to send, as on every packet a receiver gets: no clock
		// reading, no rate estimate.
		s.armTimer(false)
		return
	}
	now := time.Now()
	limit := min(max(s.cwnd, s.rate.floor(now)), max(s.sendRwnd, MaxPayload))
	defer s.armTimer(false)
	defer s.sendBatch()
	for len(s.retx) > 0 {
		p := s.outAt(s.retx[0])
		if p == nil || !p.lost || p.sacked {
			s.retx = s.retx[1:]
			continue
		}
		if s.inflight > 0 && s.inflight+p.size() > limit {
			return
		}
		s.retx = s.retx[1:]
		s.transmit(p, now, 0)
	}
	if s.inflight > 0 && s.seq-s.sndNxt >= minBurst {
		// Bulk data behind a full window: wait until the window has
		// room for a burst, which the acks still due will make.
		if want := min(minBurst*s.payloadSize(), limit/4); limit-s.inflight < want {
			return
		}
	}
	unsent := s.unsent
	for seqLess(s.sndNxt, s.seq) {
		p := s.outAt(s.sndNxt)
		if p == nil {
			break
		}
		if s.inflight > 0 && s.inflight+p.size() > limit {
			break
		}
		if s.sendRwnd < p.size() {
			break // see windowShut
		}
		s.sndNxt++
		s.unsent -= p.size()
		pad := 0
		if s.shouldProbe(p) {
			p.probe, s.probing = true, true
			pad = s.probePad(p)
		}
		s.transmit(p, now, pad)
	}
	if s.unsent < unsent {
		notify(s.writeCh) // a writer may wait for room under maxUnsent
	}
}

// minBurst is the fewest new packets a stream with packets in flight
// sends at once when more wait, while its window holds four such bursts.
// A receiver that acks every packet (libudx does) frees the window a
// packet or two an ack, and sending on each read's acks cost a system
// call per four packets against a JS peer; in bursts they leave as one
// segmented send (an upload's send calls per GB 179,000 -> 74,000). The
// packets in flight keep the path busy meanwhile, so a bulk transfer is
// not slower for it, and data written to an idle or open window goes at
// once.
const minBurst = 16

func (s *Stream) transmit(p *outPacket, now time.Time, pad int) {
	s.stats.PacketsSent++
	s.u.count.dataSent.Add(1)
	if p.tx > 0 {
		s.stats.Retransmits++
		s.u.count.retransmits.Add(1)
	}
	p.lost = false
	p.inflight = true
	p.sentAt = now
	s.rate.onSend(p, now)
	p.tx++
	if p.tx > 1 {
		if len(s.resent) >= maxOut {
			s.pruneResent()
		}
		s.resent = append(s.resent, resend{p.seq, p.tx})
	}
	s.inflight += p.size()
	s.queueTx(p.flags, p.seq, p.data, pad)
}

// resend lists a packet's transmission after its first.
type resend struct {
	seq uint32
	tx  int
}

// pruneResent drops from s.resent the packets acked or sent again since
// detectLoss last ran: without sacks (a receiver that sends none, or a
// path that loses every ack) detectLoss does not run, and each timeout
// sends packets again.
func (s *Stream) pruneResent() {
	s.resent = slices.DeleteFunc(s.resent, func(r resend) bool {
		p := s.outAt(r.seq)
		return p == nil || p.tx != r.tx
	})
}

// txBatch gathers packets for one destination so that they leave in one
// segmented send: all the same size but the last. A packet's payload is
// sent from its own buffer, gathered by the kernel.
type txBatch struct {
	hdrs  []byte   // the packets' headers and probe padding, end to end
	parts [][]byte // header, payload, header, payload...
	seg   int
	n     int
	short bool
}

var zeros [HeaderSize + 255]byte

// maxSegments keeps a segmented send within one UDP datagram's 64 KiB and
// the kernel's 64-segment limit.
func maxSegments(seg int) int { return min(64, 65000/seg) }

// queueTx adds a packet to the batch; pad bytes of data offset go before
// the payload, as libudx pads MTU probes.
func (s *Stream) queueTx(flags byte, seq uint32, payload []byte, pad int) {
	b := &s.txb
	size := HeaderSize + pad + len(payload)
	if b.n > 0 && (size > b.seg || b.short || b.n >= maxSegments(b.seg)) {
		s.sendBatch()
	}
	if b.n == 0 {
		if b.hdrs == nil {
			// Room for a full batch's headers and one probe's padding:
			// the parts point into it, so it must not move.
			b.hdrs = make([]byte, 0, 64*HeaderSize+len(zeros))
		}
		b.seg, b.hdrs = size, b.hdrs[:0]
	}
	b.short = size < b.seg
	h := s.stateHeader(flags, seq)
	h.dataOffset = byte(pad)
	off := len(b.hdrs)
	b.hdrs = append(b.hdrs, zeros[:HeaderSize+pad]...)
	h.put(b.hdrs[off:])
	b.parts = append(b.parts, b.hdrs[off:], payload)
	b.n++
	if flags&(FlagData|FlagEnd) != 0 {
		// Data carries the ack; no separate one is owed.
		s.ackPending = false
	}
}

func (s *Stream) sendBatch() {
	b := &s.txb
	if b.n == 0 {
		return
	}
	// A failed send is a lost packet; retransmission recovers it.
	s.oob, _ = s.socket.writeSegments(b.parts, b.seg, b.n, s.remote, s.oob)
	// The payloads are the packets' own, which acks give back.
	clear(b.parts)
	b.parts, b.n, b.short = b.parts[:0], 0, false
}

// flushOwedSends sends what the packets of a read let the stream send,
// and wakes its reader to what they brought: once a read, not once a
// packet, so that a reader woken takes the read's data in one go.
func (s *Stream) flushOwedSends() {
	s.mu.Lock()
	if s.flushOwed {
		s.flushOwed = false
		s.flush()
	}
	if s.readOwed {
		s.wakeReader()
	}
	s.mu.Unlock()
}

// sendPendingAck sends the ack a read left owed, unless data carried it.
func (s *Stream) sendPendingAck() {
	s.mu.Lock()
	if s.ackPending && s.err == nil && s.socket != nil {
		s.sendAck()
	}
	s.ackPending = false
	s.mu.Unlock()
}

func (s *Stream) sampleRTT(r time.Duration) {
	if r <= 0 {
		r = time.Microsecond
	}
	if s.srtt == 0 {
		s.srtt, s.rttvar = r, r/2
	} else {
		d := s.srtt - r
		if d < 0 {
			d = -d
		}
		s.rttvar = (3*s.rttvar + d) / 4
		s.srtt = (7*s.srtt + r) / 8
	}
	s.rto = min(max(s.srtt+4*s.rttvar, minRTO), maxRTO)
}

// windowShut reports whether the next new packet waits for room in the
// receiver's window, even with nothing in flight. A receiver drops what
// does not fit, and a dropped packet holds every later one out of order and
// costs a retransmission and the congestion window; so the sender waits for
// the ack the receiver sends when its reader frees room, and probes on its
// timer in case that ack is lost.
func (s *Stream) windowShut() bool {
	p := s.outAt(s.sndNxt)
	return p != nil && s.sendRwnd < p.size()
}

// armTimer runs the retransmission timer while packets are outstanding (or
// data waits on a zero window); restart re-arms it from now after progress.
func (s *Stream) armTimer(restart bool) {
	restart, s.rtoRestart = restart || s.rtoRestart, false
	outstanding := seqLess(s.sndUna(), s.sndNxt) || s.windowShut()
	if !outstanding {
		if len(s.spare) < keepSpare {
			s.releaseSpare()
		}
		if len(s.spare) == 0 {
			s.timerIdle = false
			if s.timerArmed {
				s.timer.Stop()
				s.timerArmed = false
			}
			return
		}
		// Idle with spares: the timer gives them back when it fires,
		// unless a write comes first; armed, it is left as it is.
		s.timerIdle = true
		if s.timerArmed {
			return
		}
	} else if s.timerIdle {
		// Its deadline was set for the packets before, not for these.
		restart, s.timerIdle = true, false
	}
	switch {
	case s.timer == nil:
		s.timer = time.AfterFunc(s.rto, s.onTimeout)
		s.timerArmed = true
	case !s.timerArmed || restart:
		s.timer.Reset(s.rto)
		s.timerArmed = true
	}
}

func (s *Stream) onTimeout() {
	s.mu.Lock()
	s.timerArmed = false
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if s.rtoRestart {
		// An ack came after the timer was armed, in a read not yet
		// flushed: the timeout starts again from it.
		s.armTimer(true)
		s.mu.Unlock()
		return
	}
	if !seqLess(s.sndUna(), s.sndNxt) {
		if s.windowShut() {
			// Zero-window probe: a heartbeat asks for a fresh window.
			s.writePacket(FlagHeartbeat, s.seq, nil)
			s.armTimer(true)
		} else {
			s.timerIdle = false
			s.releaseSpare()
		}
		s.mu.Unlock()
		return
	}
	s.retries++
	s.stats.Timeouts++
	if s.retries > maxRetries {
		s.mu.Unlock()
		s.fail(ErrTimeout)
		return
	}
	s.ssthresh = max(s.inflight/2, 2*MaxPayload)
	s.cwnd = 2 * MaxPayload
	s.inRecovery = false
	s.retx = s.retx[:0]
	for i := s.outHead; i < len(s.out); i++ {
		p := s.out[i]
		if p.tx > 0 && !p.sacked {
			s.markLost(p)
		}
	}
	s.rto = min(2*s.rto, maxRTO)
	s.flush()
	s.armTimer(true)
	s.mu.Unlock()
}

// checkFinished releases the stream's id a while after both sides ended
// and everything was acked.
func (s *Stream) checkFinished() {
	if s.finished || !s.remoteEnded || !s.endAcked {
		return
	}
	s.finished = true
	time.AfterFunc(lingerTime, func() { s.u.release(s) })
}
