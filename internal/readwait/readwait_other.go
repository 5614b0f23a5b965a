//go:build !linux

package readwait

// Poller is not available off Linux: New fails with ErrUnsupported.
type Poller struct{}

func New() (*Poller, error)            { return nil, ErrUnsupported }
func FD(any) (int, error)              { return 0, ErrUnsupported }
func Pending(int) bool                 { return true }
func (*Poller) Wait(int, func()) error { return ErrUnsupported }
func (*Poller) Cancel(int) bool        { return false }
func (*Poller) Close() error           { return nil }
