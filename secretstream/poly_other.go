//go:build !amd64 || purego

package secretstream

// polyAVX2 reports whether the AVX2 code runs: it is amd64's only, and the
// tests may set it to no effect.
var polyAVX2 = false

// polyVector reports whether vector code runs: there is none here.
func polyVector() bool { return false }

// wide takes nothing: there is no vector code here.
func (p *polyState) wide(msg []byte) ([]byte, bool) { return msg, false }
