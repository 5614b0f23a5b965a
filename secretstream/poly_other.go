//go:build !amd64 || purego

package secretstream

// wide takes nothing: there is no AVX-512 code here.
func (p *polyState) wide(msg []byte) ([]byte, bool) { return msg, false }
