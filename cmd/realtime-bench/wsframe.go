package main

import "errors"

// WebSocket opcodes (RFC 6455 §5.2) the epoll reader handles.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// wsReadLimit is the largest message the tool accepts, as the goroutine
// reader's SetReadLimit.
const wsReadLimit = 8 << 20

// serverFrame is one frame as a server sends it: unmasked.
type serverFrame struct {
	fin     bool
	op      byte
	payload []byte // aliases the input
}

// parseServerFrame parses the frame at the start of data. It returns n = 0
// while the frame is incomplete, and an error for a frame no server may
// send (masked, reserved bits, an oversized or fragmented control frame) or
// one over wsReadLimit.
func parseServerFrame(data []byte) (f serverFrame, n int, err error) {
	if len(data) < 2 {
		return f, 0, nil
	}
	b0, b1 := data[0], data[1]
	if b0&0x70 != 0 {
		return f, 0, errors.New("bench: frame with reserved bits")
	}
	if b1&0x80 != 0 {
		return f, 0, errors.New("bench: masked frame from the server")
	}
	f.fin, f.op = b0&0x80 != 0, b0&0x0F
	size, hdr := uint64(b1&0x7F), 2
	switch size {
	case 126:
		if len(data) < 4 {
			return f, 0, nil
		}
		size, hdr = uint64(data[2])<<8|uint64(data[3]), 4
	case 127:
		if len(data) < 10 {
			return f, 0, nil
		}
		size = 0
		for _, b := range data[2:10] {
			size = size<<8 | uint64(b)
		}
		hdr = 10
	}
	if f.op >= opClose && (size > 125 || !f.fin) {
		return f, 0, errors.New("bench: bad control frame")
	}
	if size > wsReadLimit {
		return f, 0, errors.New("bench: frame over the read limit")
	}
	end := hdr + int(size)
	if len(data) < end {
		return f, 0, nil
	}
	f.payload = data[hdr:end]
	return f, end, nil
}
