package readwait

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// eventBatch bounds the events one epoll_wait returns.
const eventBatch = 128

// Poller watches connections for input. Its goroutine starts with New and
// ends with Close.
type Poller struct {
	epfd int
	stop int // an eventfd that ends the goroutine

	mu      sync.Mutex
	waiting map[int32]func() // by fd: what to run when it has input
	closed  bool
	done    chan struct{}
}

// New starts a Poller.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("readwait: epoll: %w", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("readwait: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, stop, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(stop)}); err != nil {
		unix.Close(epfd)
		unix.Close(stop)
		return nil, fmt.Errorf("readwait: epoll: %w", err)
	}
	p := &Poller{epfd: epfd, stop: stop, waiting: map[int32]func(){}, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// FD returns the descriptor of a connection the Poller can watch: a
// plain socket, not one with a user-space buffer of its own such as TLS.
func FD(c any) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, ErrUnsupported
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil || fd < 0 {
		return 0, ErrUnsupported
	}
	return fd, nil
}

// Pending reports whether input waits on fd now, without reading it.
func Pending(fd int) bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	// End of stream and errors count as input: the read that follows
	// reports them.
	return n > 0 || !errors.Is(err, unix.EAGAIN)
}

// Wait runs wake, once, on a goroutine of its own when fd has input (or
// is at its end). A Wait already armed for fd is replaced.
func (p *Poller) Wait(fd int, wake func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	ev := &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
	err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, ev)
	if errors.Is(err, unix.ENOENT) {
		// Not watched before, or closed since, which drops it from epoll.
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, ev)
	}
	if err != nil {
		return fmt.Errorf("readwait: watch %d: %w", fd, err)
	}
	p.waiting[int32(fd)] = wake
	return nil
}

// Cancel stops watching fd; call it before closing fd. It reports whether
// a Wait was armed, whose wake then never runs.
func (p *Poller) Cancel(fd int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, armed := p.waiting[int32(fd)]
	delete(p.waiting, int32(fd))
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	return armed
}

func (p *Poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, eventBatch)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == p.stop {
				return
			}
			p.mu.Lock()
			wake := p.waiting[ev.Fd]
			delete(p.waiting, ev.Fd)
			p.mu.Unlock()
			if wake != nil {
				go wake()
			}
		}
	}
}

// Close ends the Poller's goroutine; armed Waits never wake.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	var one [8]byte
	one[0] = 1
	unix.Write(p.stop, one[:])
	<-p.done
	unix.Close(p.stop)
	return unix.Close(p.epfd)
}
