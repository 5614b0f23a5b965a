package udx

import (
	"math/rand/v2"
	"testing"
	"time"
)

// wouldLose is detectLoss's rule applied by walking every unacked packet
// before hi: the packets it marks lost.
func wouldLose(s *Stream, hi *outPacket, now time.Time) map[uint32]bool {
	window := s.srtt + s.srtt/4 + time.Millisecond
	lost := map[uint32]bool{}
	for _, p := range s.out[s.outHead:] {
		if !seqLess(p.seq, hi.seq) {
			break
		}
		if p.sacked || p.lost || p.tx == 0 || p.sentAt.After(hi.sentAt) {
			continue
		}
		if hi.seq-p.seq >= 3 || now.Sub(p.sentAt) > window {
			lost[p.seq] = true
		}
	}
	return lost
}

// TestDetectLossJudgesAsAWalkWould plays sacks, retransmissions,
// cumulative acks and new data on a stream whose remote acks nothing, in
// a random order, and checks at every sack that detectLoss marks lost
// exactly the packets a walk of the whole window would.
func TestDetectLossJudgesAsAWalkWould(t *testing.T) {
	u, peer := New(), New()
	sock, dst := listen(t, u, nil), listen(t, peer, nil)
	s, _ := u.NewStream(1)
	s.Connect(sock, 2, dst.LocalAddr()) // no stream there: the test plays the acks
	defer s.Close()
	rng := rand.New(rand.NewPCG(7, 27))
	payload := make([]byte, MaxPayload)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cwnd = 1 << 30
	s.srtt = 2 * time.Millisecond
	send := func(n int) {
		for range n {
			s.enqueue(FlagData, payload)
		}
		s.flush()
	}
	send(400)
	judged, marked := 0, 0
	for range 5000 {
		outstanding := s.out[s.outHead:]
		if len(outstanding) < 50 {
			send(200)
			continue
		}
		switch r := rng.IntN(20); {
		case r < 14: // a sack of one packet, maybe with some before it
			hi := outstanding[rng.IntN(len(outstanding))]
			if hi.tx == 0 || hi.sacked {
				continue
			}
			for i := max(0, int(hi.seq-s.sndUna())-rng.IntN(4)); outstanding[i] != hi; i++ {
				outstanding[i].sacked = true
			}
			hi.sacked = true
			now := time.Now().Add(time.Duration(rng.IntN(4000)) * time.Microsecond)
			want := wouldLose(s, hi, now)
			before := map[uint32]bool{}
			for _, p := range outstanding {
				before[p.seq] = p.lost
			}
			s.detectLoss(hi, now)
			for _, p := range outstanding {
				if got := p.lost && !before[p.seq]; got != want[p.seq] {
					t.Fatalf("packet %d (sent %d times, newest sacked %d): lost %v, a walk says %v", p.seq, p.tx, hi.seq, got, want[p.seq])
				}
			}
			judged++
			marked += len(want)
		case r < 17: // the lost go again
			s.flush()
		case r < 19: // a cumulative ack of a few
			s.onAck(outstanding[min(rng.IntN(8), len(outstanding)-1)].seq, nil, time.Now())
		default:
			send(rng.IntN(30))
		}
	}
	if judged < 1000 || marked < 1000 {
		t.Fatalf("only %d sacks judged, %d packets marked lost: the play tests too little", judged, marked)
	}
}

// TestSacksMarkWhatTheyName plays a receiver that gets a random part of
// what a stream sends and acks it with its holes' ranges, every range
// again at every ack, in a random order and with claims past what was
// sent: after each ack exactly the packets named so far are sacked, and
// what is in flight is what is neither acked nor sacked.
func TestSacksMarkWhatTheyName(t *testing.T) {
	u, peer := New(), New()
	sock, dst := listen(t, u, nil), listen(t, peer, nil)
	s, _ := u.NewStream(1)
	s.Connect(sock, 2, dst.LocalAddr()) // no stream there: the test plays the acks
	defer s.Close()
	rng := rand.New(rand.NewPCG(3, 9))
	payload := make([]byte, MaxPayload)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cwnd = 1 << 30
	send := func(n int) {
		for range n {
			s.enqueue(FlagData, payload)
		}
		s.flush()
	}
	send(300)
	received := map[uint32]bool{}
	stepped := 0
	for range 3000 {
		if s.sndNxt-s.sndUna() < 100 {
			send(200)
		}
		una, nxt := s.sndUna(), s.sndNxt
		for range rng.IntN(6) {
			received[una+uint32(rng.IntN(int(nxt-una)))] = true
		}
		cum := una
		for received[cum] {
			cum++
		}
		var ranges []sackRange
		for q := cum; seqLess(q, nxt); q++ {
			if received[q] && (len(ranges) == 0 || ranges[len(ranges)-1].end != q) {
				ranges = append(ranges, sackRange{q, q + 1})
			} else if received[q] {
				ranges[len(ranges)-1].end++
			}
		}
		if len(ranges) > 0 && rng.IntN(4) == 0 {
			received[nxt-1] = true
			ranges = append(ranges, sackRange{nxt - 1, nxt + 50}) // runs past what was sent
		}
		rng.Shuffle(len(ranges), func(i, j int) { ranges[i], ranges[j] = ranges[j], ranges[i] })
		if len(ranges) > MaxSACKRanges {
			ranges = ranges[:MaxSACKRanges]
		}
		if len(s.sackSeen) > 0 {
			stepped++
		}
		s.onAck(cum, ranges, time.Now())
		inflight := 0
		for _, p := range s.out[s.outHead:] {
			named := false
			for _, r := range ranges {
				named = named || (!seqLess(p.seq, r.start) && seqLess(p.seq, r.end) && seqLess(p.seq, nxt))
			}
			if named && !p.sacked {
				t.Fatalf("packet %d named by the ack, not sacked", p.seq)
			}
			if p.sacked && !received[p.seq] {
				t.Fatalf("packet %d sacked, never named", p.seq)
			}
			if p.inflight {
				inflight += p.size()
			}
		}
		if inflight != s.inflight {
			t.Fatalf("%d bytes in flight, the stream counts %d", inflight, s.inflight)
		}
		for q := range received {
			if seqLess(q, s.sndUna()) {
				delete(received, q)
			}
		}
		if rng.IntN(5) == 0 {
			s.flush() // what loss detection judged lost goes again
		}
	}
	if stepped < 1000 {
		t.Fatalf("only %d acks had ranges to step over: the play tests too little", stepped)
	}
}
