package routing

import "golang.org/x/crypto/blake2b"

// Pick chooses the worker for key among live by rendezvous hashing: the
// worker with the highest hash of key and its id. Every edge picks the
// same worker for a key while the live set is the same, and a worker's
// loss moves only its own keys. It returns "" when live is empty.
func Pick(key []byte, live []string) string {
	var best string
	var bestScore [32]byte
	for _, w := range live {
		h, _ := blake2b.New256(nil)
		h.Write(key)
		h.Write([]byte{0})
		h.Write([]byte(w))
		var score [32]byte
		h.Sum(score[:0])
		if best == "" || string(score[:]) > string(bestScore[:]) {
			best, bestScore = w, score
		}
	}
	return best
}
