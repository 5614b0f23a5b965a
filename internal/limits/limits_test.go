package limits

import (
	"errors"
	"reflect"
	"testing"
)

// TestEveryLimitHasADefaultAndIsChecked: every limit of Default is set,
// and Validate refuses each one zeroed, so that a limit added to the
// struct without a default or a check fails here.
func TestEveryLimitHasADefaultAndIsChecked(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(d)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if name == "Caps" {
			continue // off by default
		}
		if v.Field(i).IsZero() {
			t.Errorf("%s has no default", name)
		}
		l := Default()
		reflect.ValueOf(&l).Elem().Field(i).SetZero()
		if err := l.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s zeroed: Validate says %v", name, err)
		}
	}
}

func TestCapsAreOffOrPositive(t *testing.T) {
	l := Default()
	l.Caps = Caps{SessionByteRate: 1 << 20, StreamBytes: 1 << 30}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	l.Caps.StreamDuration = -1
	if err := l.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a negative cap: %v", err)
	}
}
