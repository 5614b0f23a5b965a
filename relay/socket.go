package relay

import "net"

// RawIOListener is ln whose connections are made RawIO as accepted.
func RawIOListener(ln net.Listener) net.Listener { return rawIOListener{ln} }

type rawIOListener struct{ net.Listener }

func (l rawIOListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return RawIO(c), nil
}
