// Package budget is a number of bytes that work is admitted against and
// given back to, shared by every session of a process: when it is spent,
// what asks for more is refused at once instead of growing memory.
package budget

import "sync/atomic"

// Budget is a byte budget. Its methods are safe for concurrent use.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// New returns a budget of limit bytes.
func New(limit int64) *Budget { return &Budget{limit: limit} }

// Take admits n more bytes, or reports false (and takes nothing) if they
// do not fit.
func (b *Budget) Take(n int) bool {
	for {
		u := b.used.Load()
		if u+int64(n) > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+int64(n)) {
			return true
		}
	}
}

// Hold counts n bytes that are already held and cannot be refused, such
// as stream data a peer was granted credit for; they make the budget
// tight like any other, and are given back with Give.
func (b *Budget) Hold(n int) { b.used.Add(int64(n)) }

// Give returns n bytes taken before.
func (b *Budget) Give(n int) { b.used.Add(-int64(n)) }

// Used is how many bytes are taken.
func (b *Budget) Used() int64 { return b.used.Load() }

// Tight reports whether more than nine tenths of the budget is taken: the
// point where new sessions are turned away so that those open can finish
// what they are reading.
func (b *Budget) Tight() bool { return TightAt(b.used.Load(), b.limit) }

// TightAt is the rule Tight applies, for a figure kept elsewhere (such as
// a worker's, which it samples from its streams rather than counts): more
// than nine tenths of limit used. The last tenth is what work already
// admitted may still grow into while new work is refused.
func TightAt(used, limit int64) bool { return used*10 > limit*9 }
