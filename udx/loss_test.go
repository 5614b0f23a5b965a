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
