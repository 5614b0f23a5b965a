package noise

import (
	"crypto/rand"
	"testing"
)

// TestValidPublicKey: every key pair's public key is a valid point, and
// the keys DH refuses are the ones ValidPublicKey refuses.
func TestValidPublicKey(t *testing.T) {
	local, _ := GenerateKeyPair(rand.Reader)
	invalid := 0
	for range 200 {
		kp, _ := GenerateKeyPair(rand.Reader)
		if !ValidPublicKey(kp.Public[:]) {
			t.Fatalf("a key pair's public key %x is not valid", kp.Public)
		}
		var b [32]byte
		rand.Read(b[:])
		_, err := DH(&local, b[:])
		if ValidPublicKey(b[:]) != (err == nil) {
			t.Fatalf("%x: valid %v, DH error %v", b, ValidPublicKey(b[:]), err)
		}
		if err != nil {
			invalid++
		}
	}
	if invalid == 0 {
		t.Fatal("no random key was invalid: most should be")
	}
	if ValidPublicKey(make([]byte, 31)) {
		t.Fatal("a short key is valid")
	}
}
