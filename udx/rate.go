package udx

import "time"

// Delivery-rate estimation, for a window floor in the manner of BBR: the
// bottleneck bandwidth is the largest delivery rate seen over the last
// rateBuckets × rateBucket, and the floor is floorGain × bandwidth × the
// smallest recent RTT. Random loss then no longer shrinks the window below
// what the path has shown it delivers, which a loss-halving window alone
// would do at every loss.
const (
	rateBuckets   = 8
	rateBucket    = 100 * time.Millisecond
	minRTTWindow  = 10 * time.Second
	floorGain     = 2
	floorMinBytes = 4 * MaxPayload
)

type rateEstimator struct {
	delivered   int64     // bytes acked or sacked so far
	deliveredAt time.Time // when the last of them was
	buckets     [rateBuckets]struct {
		epoch int64
		rate  float64 // bytes per second
	}
	minRTT   time.Duration
	minRTTAt time.Time
}

// onSend stamps a packet with the delivery state it was sent in.
func (r *rateEstimator) onSend(p *outPacket, now time.Time) {
	if r.deliveredAt.IsZero() {
		r.deliveredAt = now
	}
	p.delivered, p.deliveredAt = r.delivered, r.deliveredAt
}

// onDelivered counts a packet acked or sacked for the first time and takes
// a rate sample from it.
func (r *rateEstimator) onDelivered(p *outPacket, now time.Time) {
	r.delivered += int64(max(p.size(), 1))
	r.deliveredAt = now
	if p.tx != 1 {
		return // a retransmission's interval is ambiguous
	}
	if rtt := now.Sub(p.sentAt); rtt > 0 && (r.minRTT == 0 || rtt < r.minRTT || now.Sub(r.minRTTAt) > minRTTWindow) {
		r.minRTT, r.minRTTAt = rtt, now
	}
	interval := now.Sub(p.deliveredAt)
	if interval <= 0 {
		return
	}
	rate := float64(r.delivered-p.delivered) / interval.Seconds()
	epoch := now.UnixNano() / int64(rateBucket)
	b := &r.buckets[epoch%rateBuckets]
	if b.epoch != epoch {
		b.epoch, b.rate = epoch, 0
	}
	b.rate = max(b.rate, rate)
}

// floor is the window the path has shown it can carry.
func (r *rateEstimator) floor(now time.Time) int {
	epoch := now.UnixNano() / int64(rateBucket)
	var bw float64
	for _, b := range r.buckets {
		if epoch-b.epoch < rateBuckets {
			bw = max(bw, b.rate)
		}
	}
	return max(int(floorGain*bw*r.minRTT.Seconds()), floorMinBytes)
}
