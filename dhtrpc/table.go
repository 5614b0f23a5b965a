package dhtrpc

import (
	"net/netip"
	"slices"
	"time"
)

// K is the bucket size and the number of closest nodes a query keeps.
const K = 20

// Contact is a persistent node: its id and address.
type Contact struct {
	ID   [IDSize]byte
	Addr netip.AddrPort
	seen time.Time // last time we heard from it
}

// table is a Kademlia routing table with one bucket of up to K contacts per
// shared-prefix length with the local id, as kademlia-routing-table keeps.
type table struct {
	id   [IDSize]byte
	rows [IDSize*8 + 1][]Contact
	n    int
}

// oldest returns the contact heard from longest ago in c's bucket.
func (t *table) oldest(id [IDSize]byte) (Contact, bool) {
	r := commonPrefix(&t.id, &id)
	if r == IDSize*8 || len(t.rows[r]) == 0 {
		return Contact{}, false
	}
	o := t.rows[r][0]
	for _, c := range t.rows[r][1:] {
		if c.seen.Before(o.seen) {
			o = c
		}
	}
	return o, true
}

// stale returns up to n contacts not heard from since before.
func (t *table) stale(before time.Time, n int) []Contact {
	var out []Contact
	for _, row := range t.rows {
		for _, c := range row {
			if c.seen.Before(before) {
				out = append(out, c)
				if len(out) == n {
					return out
				}
			}
		}
	}
	return out
}

// add inserts or refreshes c; it reports false when c's bucket is full.
func (t *table) add(c Contact) bool {
	r := commonPrefix(&t.id, &c.ID)
	if r == IDSize*8 {
		return false // ourselves
	}
	row := t.rows[r]
	for i := range row {
		if row[i].ID == c.ID {
			row[i] = c
			return true
		}
	}
	if len(row) >= K {
		return false
	}
	t.rows[r] = append(row, c)
	t.n++
	return true
}

func (t *table) remove(id [IDSize]byte) {
	r := commonPrefix(&t.id, &id)
	if r == IDSize*8 {
		return
	}
	row := t.rows[r]
	for i := range row {
		if row[i].ID == id {
			t.rows[r] = slices.Delete(row, i, i+1)
			t.n--
			return
		}
	}
}

func (t *table) has(id [IDSize]byte) bool {
	r := commonPrefix(&t.id, &id)
	if r == IDSize*8 {
		return false
	}
	for _, c := range t.rows[r] {
		if c.ID == id {
			return true
		}
	}
	return false
}

// closest returns up to k contacts closest to target by XOR distance.
func (t *table) closest(target *[IDSize]byte, k int) []Contact {
	all := make([]Contact, 0, t.n)
	for _, row := range t.rows {
		all = append(all, row...)
	}
	slices.SortFunc(all, func(a, b Contact) int {
		if closer(target, &a.ID, &b.ID) {
			return -1
		}
		if closer(target, &b.ID, &a.ID) {
			return 1
		}
		return 0
	})
	if len(all) > k {
		all = all[:k]
	}
	return all
}

// rehome re-keys the table to a new local id, as a node that turns
// persistent does.
func (t *table) rehome(id [IDSize]byte) {
	var all []Contact
	for i := range t.rows {
		all = append(all, t.rows[i]...)
		t.rows[i] = nil
	}
	t.id, t.n = id, 0
	for _, c := range all {
		t.add(c)
	}
}
