// Package uring makes one non-blocking send or receive on each of many
// sockets in one system call, through a Linux io_uring instance. Where a
// system call is dear (virtual machines with page-table isolation), one
// write(2) or read(2) per socket is most of a fan-out's or a reader's CPU;
// a Ring serves up to Entries sockets per call instead. Elsewhere than on
// Linux, New fails and callers make one call per socket.
package uring
