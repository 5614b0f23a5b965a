package noise

import "testing"

// FuzzRecv feeds arbitrary first messages to IK and XX responders and
// arbitrary second messages to initiators; none may panic.
func FuzzRecv(f *testing.F) {
	a, _ := GenerateKeyPair(bytesReader(1))
	b, _ := GenerateKeyPair(bytesReader(2))
	i, _ := NewHandshake(Config{Pattern: IK, Initiator: true, Static: a, RemoteStatic: b.Public[:]})
	m1, _ := i.Send([]byte("payload"))
	f.Add(uint8(0), m1)
	x, _ := NewHandshake(Config{Pattern: XX, Initiator: true, Static: a})
	m1x, _ := x.Send(nil)
	f.Add(uint8(1), m1x)
	f.Add(uint8(2), make([]byte, 96))
	f.Fuzz(func(t *testing.T, which uint8, msg []byte) {
		var h *Handshake
		switch which % 4 {
		case 0:
			h, _ = NewHandshake(Config{Pattern: IK, Static: b})
		case 1:
			h, _ = NewHandshake(Config{Pattern: XX, Static: b})
		case 2:
			h, _ = NewHandshake(Config{Pattern: XX, Initiator: true, Static: a, Ephemeral: &a})
			h.Send(nil)
		case 3:
			h, _ = NewHandshake(Config{Pattern: IK, Initiator: true, Static: a, RemoteStatic: b.Public[:], Ephemeral: &a})
			h.Send(nil)
		}
		h.Recv(msg)
	})
}
