// Package readwait tells when idle connections have input, with one
// goroutine for all of them: a relay holds many clients that send nothing
// for minutes, and a goroutine blocked in a read costs each of them a
// stack. A connection is watched once per Wait (epoll one-shot); the
// caller reads it as usual once woken.
package readwait

import "errors"

// ErrUnsupported means the platform or the connection cannot be watched;
// the caller keeps a goroutine reading instead.
var ErrUnsupported = errors.New("readwait: not supported here")

// ErrClosed means the Poller has closed.
var ErrClosed = errors.New("readwait: closed")
