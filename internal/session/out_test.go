package session

import "testing"

// TestPopChunksJoinsOnlyTheStreamsNextChunks: the writer joins to a chunk
// the chunks of the same stream that come next in order, and stops at
// another stream's message, a message that is not one chunk, the room
// left, the run's capacity, or an urgent message waiting.
func TestPopChunksJoinsOnlyTheStreamsNextChunks(t *testing.T) {
	a, b := &stream{worker: 1}, &stream{worker: 2}
	chunk := func(st *stream, n int) outItem { return outItem{data: st, n: n, chunk: make([]byte, n)} }
	cases := []struct {
		name  string
		queue []outItem
		room  int
		cap   int
		want  int // chunks joined
	}{
		{"same stream", []outItem{chunk(a, 10), chunk(a, 10), chunk(a, 10)}, 100, 8, 3},
		{"another stream", []outItem{chunk(a, 10), chunk(b, 10), chunk(a, 10)}, 100, 8, 1},
		{"not one chunk", []outItem{chunk(a, 10), {data: a, n: 20}, chunk(a, 10)}, 100, 8, 1},
		{"control message", []outItem{chunk(a, 10), {payload: []byte{1}}, chunk(a, 10)}, 100, 8, 1},
		{"room", []outItem{chunk(a, 10), chunk(a, 10), chunk(a, 10)}, 25, 8, 2},
		{"capacity", []outItem{chunk(a, 10), chunk(a, 10), chunk(a, 10)}, 100, 2, 2},
	}
	for _, c := range cases {
		q := &outQueue{writing: true, release: func(it outItem) { it.lease.Release() }} // as if the writer ran: none starts
		for _, it := range c.queue {
			q.push(it, 10)
		}
		run := q.popChunks(a, c.room, make([]outItem, 0, c.cap))
		if len(run) != c.want {
			t.Fatalf("%s: joined %d, want %d", c.name, len(run), c.want)
		}
		if left := len(q.fifo); left != len(c.queue)-c.want {
			t.Fatalf("%s: %d left queued, want %d", c.name, left, len(c.queue)-c.want)
		}
	}
	q := &outQueue{writing: true, release: func(it outItem) { it.lease.Release() }}
	q.push(chunk(a, 10), 10)
	q.push(outItem{payload: []byte{1}, urgent: true}, 10)
	if run := q.popChunks(a, 100, make([]outItem, 0, 8)); len(run) != 0 {
		t.Fatal("joined past an urgent message")
	}
	q.urgent = nil
	if run := q.popChunks(a, 100, make([]outItem, 0, 8)); len(run) != 1 || q.fifo != nil {
		t.Fatal("an emptied queue is kept")
	}
}

// countBudget is a Budget that counts what it holds.
type countBudget struct{ held int }

func (b *countBudget) Take(n int) bool { b.held += n; return true }
func (b *countBudget) Hold(n int)      { b.held += n }
func (b *countBudget) Give(n int)      { b.held -= n }

// TestQueuedDataHoldsTheBudget: stream data queued for the client counts
// against the edge's budget until it is let go, written or dropped, and a
// session that is over holds nothing of it, even for data that arrives
// after it ended; what is dropped gives its buffers back, a gathered
// message's lent one too.
func TestQueuedDataHoldsTheBudget(t *testing.T) {
	st := &stream{worker: 1}
	b := &countBudget{}
	var released []outItem
	q := &outQueue{writing: true, budget: b, release: func(it outItem) { released = append(released, it) }}
	lent := make([]byte, 50)
	q.push(outItem{data: st, n: 100, chunk: make([]byte, 100)}, 10)
	q.push(outItem{payload: []byte{1}}, 10)
	q.push(outItem{data: st, n: 50, chunk: lent, credited: true, lent: &lent}, 10)
	if b.held != 150 {
		t.Fatalf("queued data holds %d, want 150", b.held)
	}
	it, _ := q.pop()
	q.give(it.n) // as the writer does once it is written
	q.drop()
	if b.held != 0 {
		t.Fatalf("a session over still holds %d", b.held)
	}
	if len(released) != 2 || released[1].lent != &lent {
		t.Fatalf("dropping released %d items, the gathered one's buffer %v", len(released), len(released) == 2 && released[1].lent == &lent)
	}
	q.push(outItem{data: st, n: 70, chunk: make([]byte, 70)}, 10)
	if b.held != 0 || len(q.fifo) != 0 || len(released) != 3 {
		t.Fatalf("data arriving after the end holds %d, %d queued, %d released in all", b.held, len(q.fifo), len(released))
	}
}

// TestWriterRunAllocatesNothing: the writer starts with each burst of
// data and ends when the queue is empty; a run, joining a stream's chunks,
// allocates nothing once its room has been lent before.
func TestWriterRunAllocatesNothing(t *testing.T) {
	a := &stream{worker: 1}
	chunk := outItem{data: a, n: 10, chunk: make([]byte, 10)}
	var joined int
	q := &outQueue{
		joins:   true,
		release: func(outItem) {},
		write: func(_ outItem, run []outItem, _ *writeScratch) bool {
			joined += len(run)
			return true
		},
	}
	fifo := make([]outItem, 0, 4)
	allocs := testing.AllocsPerRun(100, func() {
		q.fifo = append(fifo[:0], chunk, chunk, chunk)
		q.writing = true
		q.run()
	})
	if allocs != 0 {
		t.Fatalf("a writer's run allocated %.1f times", allocs)
	}
	if joined == 0 {
		t.Fatal("no chunk was joined: the run did not take the path that joins")
	}
}
