package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Ring is an io_uring instance that makes one non-blocking send or
// receive on each of many sockets in one system call. It is not safe for
// concurrent use.
type Ring struct {
	fd int

	sqHead, sqTail *uint32 // shared with the kernel: read with atomics
	sqMask         uint32
	sqArray        []uint32
	sqes           []uringSQE

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []uringCQE

	ringMem, sqeMem []byte // the mappings, for close
}

// Entries is a ring's submission queue size: the most sockets one call
// serves.
const Entries = 256

// Linux's io_uring ABI (include/uapi/linux/io_uring.h): the numbers and
// layouts below are fixed by the kernel.
const (
	sysIOUringSetup = 425
	sysIOUringEnter = 426

	uringOffSQRing = 0
	uringOffSQEs   = 0x10000000

	uringSetupSubmitAll  = 1 << 7 // keep submitting after an entry fails
	uringSetupCoopTaskrn = 1 << 8 // no interrupt to run completion work
	uringFeatSingleMmap  = 1 << 0
	uringEnterGetEvents  = 1 << 0

	uringOpSend = 26
	uringOpRecv = 27

	msgDontWait = 0x40   // MSG_DONTWAIT: a full socket fails with EAGAIN
	msgNoSignal = 0x4000 // MSG_NOSIGNAL: a reset peer is EPIPE, not SIGPIPE
)

type uringSQOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type uringCQOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type uringParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  uringSQOffsets
	CQOff                                                                  uringCQOffsets
}

type uringSQE struct {
	Opcode, Flags         uint8
	IOPrio                uint16
	Fd                    int32
	Off, Addr             uint64
	Len, MsgFlags         uint32
	UserData              uint64
	BufIndex, Personality uint16
	SpliceFdIn            int32
	Addr3, Pad            uint64
}

type uringCQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// ErrUnusable means the kernel broke the ring's protocol: the caller
// should close the ring and make no more.
var ErrUnusable = errors.New("io_uring: ring unusable")

// New sets up a ring, or reports why the kernel will not (too old, or
// io_uring disabled by sysctl or seccomp).
func New() (*Ring, error) {
	var p uringParams
	p.Flags = uringSetupSubmitAll | uringSetupCoopTaskrn
	fd, _, e := syscall.Syscall(sysIOUringSetup, Entries, uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	r := &Ring{fd: int(fd)}
	if p.Features&uringFeatSingleMmap == 0 {
		r.Close()
		return nil, fmt.Errorf("io_uring_setup: kernel maps the rings separately: %w", ErrUnusable)
	}
	size := max(p.SQOff.Array+p.SQEntries*4, p.CQOff.CQEs+p.CQEntries*uint32(unsafe.Sizeof(uringCQE{})))
	mem, err := syscall.Mmap(r.fd, uringOffSQRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("io_uring rings: %w", err)
	}
	r.ringMem = mem
	sqeMem, err := syscall.Mmap(r.fd, uringOffSQEs, int(p.SQEntries)*int(unsafe.Sizeof(uringSQE{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("io_uring entries: %w", err)
	}
	r.sqeMem = sqeMem
	base := unsafe.Pointer(&mem[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.SQOff.Head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.SQOff.Tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.SQOff.RingMask))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Add(base, p.SQOff.Array)), p.SQEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqeMem[0])), p.SQEntries)
	r.cqHead = (*uint32)(unsafe.Add(base, p.CQOff.Head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.CQOff.Tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.CQOff.RingMask))
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Add(base, p.CQOff.CQEs)), p.CQEntries)
	return r, nil
}

// Send writes each bufs[i] to the socket fds[i] once, without waiting,
// and stores in res[i] the bytes written or a negative errno (-EAGAIN
// when the socket's buffer is full). See submit for the rest of the
// contract.
func (r *Ring) Send(fds []int, bufs [][]byte, res []int32) error {
	return r.submit(uringOpSend, fds, bufs, res)
}

// Recv reads from each socket fds[i] once, without waiting, into bufs[i],
// and stores in res[i] the bytes read (0 at end of stream) or a negative
// errno (-EAGAIN when nothing is there). See submit for the rest of the
// contract.
func (r *Ring) Recv(fds []int, bufs [][]byte, res []int32) error {
	return r.submit(uringOpRecv, fds, bufs, res)
}

// submit makes op on every socket at once and waits for every result.
// len(fds) must not exceed Entries, and each descriptor must stay open
// until submit returns; the buffers stay reachable meanwhile (Go's heap
// does not move). An error means the ring is unusable: res is then left
// as it was for the operations that did not complete, and those were not
// made.
func (r *Ring) submit(op uint8, fds []int, bufs [][]byte, res []int32) error {
	n := uint32(len(fds))
	if n == 0 {
		return nil
	}
	tail := atomic.LoadUint32(r.sqTail)
	for i := range n {
		idx := (tail + i) & r.sqMask
		var addr uint64
		if len(bufs[i]) > 0 {
			addr = uint64(uintptr(unsafe.Pointer(&bufs[i][0])))
		}
		r.sqes[idx] = uringSQE{Opcode: op, Fd: int32(fds[i]), Addr: addr, Len: uint32(len(bufs[i])), MsgFlags: msgDontWait | msgNoSignal, UserData: uint64(i)}
		r.sqArray[idx] = idx
	}
	atomic.StoreUint32(r.sqTail, tail+n)
	done := uint32(0)
	for done < n {
		pending := atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
		_, _, e := syscall.Syscall6(sysIOUringEnter, uintptr(r.fd), uintptr(pending), uintptr(n-done), uringEnterGetEvents, 0, 0)
		if e != 0 && e != syscall.EINTR && e != syscall.EAGAIN && e != syscall.EBUSY {
			return fmt.Errorf("io_uring_enter: %w", e)
		}
		head := atomic.LoadUint32(r.cqHead)
		for ctail := atomic.LoadUint32(r.cqTail); head != ctail; head++ {
			c := r.cqes[head&r.cqMask]
			if c.UserData < uint64(n) {
				res[c.UserData] = c.Res
			}
			done++
		}
		atomic.StoreUint32(r.cqHead, head)
		if e == 0 && done < n && atomic.LoadUint32(r.sqTail) == atomic.LoadUint32(r.sqHead) && pending == 0 {
			// Everything is submitted and the kernel returned without the
			// completions it was asked to wait for: not a ring we can use.
			return ErrUnusable
		}
	}
	return nil
}

// Close releases the ring.
func (r *Ring) Close() {
	if r.sqeMem != nil {
		syscall.Munmap(r.sqeMem)
	}
	if r.ringMem != nil {
		syscall.Munmap(r.ringMem)
	}
	syscall.Close(r.fd)
}
