package main

import (
	"reflect"
	"testing"
)

func TestBalanceCountsLossDuplicatesAndLeaks(t *testing.T) {
	l, err := NewLedger(3, 30)
	if err != nil {
		t.Fatal(err)
	}
	for m := int64(0); m < 30; m++ {
		if m == 9 { // a failed send is not expected anywhere
			l.MarkFailed()
			continue
		}
		l.MarkSent(m)
	}
	l.MarkSent(3) // marking twice changes nothing
	if got := l.SentTo(0); got != 9 {
		t.Fatalf("sent to key 0 = %d, want 9 (0,3,…,27 without 9)", got)
	}

	full := NewTracker(0, 3) // receives all of key 0, one twice
	for m := int64(0); m < 30; m += 3 {
		full.Receive(m)
	}
	if full.Receive(6) {
		t.Fatal("second copy of 6 reported as fresh")
	}
	lossy := NewTracker(1, 3) // misses 4 and 28, gets one message of key 2
	for m := int64(1); m < 30; m += 3 {
		if m != 4 && m != 28 {
			lossy.Receive(m)
		}
	}
	if lossy.Receive(2) {
		t.Fatal("message for key 2 accepted by a key-1 subscriber")
	}
	all := NewTracker(-1, 3) // listens to everything; gets 0..19
	for m := int64(0); m < 20; m++ {
		all.Receive(m)
	}

	a := Balance(l, []*Tracker{full, lossy, all, nil})
	want := Accounting{
		Expected:    9 + 10 + 29,
		Delivered:   9 + 8 + 19, // full: 9 was never sent; all: 0..19 minus 9
		Lost:        0 + 2 + 10,
		Duplicates:  1,
		Unexpected:  1,
		Unconfirmed: 2, // m=9 reached full and all although its send failed
		LossySubs:   2,
	}
	got := a
	got.LostSample = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("balance\n got %+v\nwant %+v", got, want)
	}
	if len(a.LostSample) != 12 || a.LostSample[0] != (LostMessage{Subscriber: 1, Message: 4}) || a.LostSample[1] != (LostMessage{Subscriber: 1, Message: 28}) || a.LostSample[2] != (LostMessage{Subscriber: 2, Message: 20}) {
		t.Fatalf("lost sample %+v", a.LostSample)
	}
}

func TestTrackerGrowsAndRejectsOutOfRange(t *testing.T) {
	tr := NewTracker(-1, 1)
	if !tr.Receive(1_000_000) || tr.Receive(1_000_000) {
		t.Fatal("large index not tracked exactly once")
	}
	if tr.Receive(-1) || tr.Receive(maxMessages) {
		t.Fatal("out-of-range index accepted")
	}
	if tr.unique != 1 || tr.dups != 1 || tr.unexpected != 2 {
		t.Fatalf("unique %d dups %d unexpected %d", tr.unique, tr.dups, tr.unexpected)
	}
}

func TestLedgerBounds(t *testing.T) {
	if _, err := NewLedger(0, 10); err == nil {
		t.Fatal("zero keys accepted")
	}
	if _, err := NewLedger(1, maxMessages+1); err == nil {
		t.Fatal("capacity over the bound accepted")
	}
	l, _ := NewLedger(2, 10)
	l.MarkSent(10)
	l.MarkSent(-1)
	if l.SentTo(-1) != 0 || l.Sent(10) {
		t.Fatal("out-of-range index recorded")
	}
}
