package dhtrpc

import "net/netip"

// natSamples is how many samples the sampler keeps, as nat-sampler does.
const natSamples = 32

// natSampler keeps how recent responders saw this node's address and
// reports the host and port a threshold of them agree on (port 0 when
// they disagree: a randomising NAT).
type natSampler struct {
	samples [natSamples]netip.AddrPort
	from    [natSamples]netip.AddrPort
	n, next int
}

func (s *natSampler) add(from, seen netip.AddrPort) {
	for i := 0; i < s.n; i++ {
		if s.from[i] == from {
			s.samples[i] = seen
			return
		}
	}
	s.samples[s.next], s.from[s.next] = seen, from
	s.next = (s.next + 1) % natSamples
	s.n = min(s.n+1, natSamples)
}

func (s *natSampler) threshold() int {
	switch {
	case s.n < 4:
		return s.n
	case s.n < 8:
		return s.n - 1
	case s.n < 12:
		return s.n - 2
	}
	return s.n - 3
}

// addr is the agreed address, a zero port for a randomising NAT, or the
// zero value when there is no agreement yet.
func (s *natSampler) addr() netip.AddrPort {
	if s.n == 0 {
		return netip.AddrPort{}
	}
	th := s.threshold()
	hosts := map[netip.Addr]int{}
	ports := map[netip.AddrPort]int{}
	for i := 0; i < s.n; i++ {
		hosts[s.samples[i].Addr()]++
		ports[s.samples[i]]++
	}
	for h, c := range hosts {
		if c < th {
			continue
		}
		for ap, pc := range ports {
			if ap.Addr() == h && pc >= th {
				return ap
			}
		}
		return netip.AddrPortFrom(h, 0)
	}
	return netip.AddrPort{}
}
