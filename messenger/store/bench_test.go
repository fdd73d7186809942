package store

import (
	"testing"
	"time"
)

// BenchmarkAddOutgoing measures one durable append (write + fsync).
func BenchmarkAddOutgoing(b *testing.B) {
	s, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	text := string(make([]byte, 200))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AddOutgoing(key(1), text, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures replaying a log of 10,000 messages.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	text := string(make([]byte, 200))
	s.f.Close()
	// Write the records directly: 10,000 fsyncs would dominate the setup.
	var buf []byte
	for i := range 10000 {
		m := Message{ID: ID{byte(i), byte(i >> 8)}, Peer: key(byte(i % 7)), Dir: Out, Text: text, Sent: time.Now()}
		buf, _ = appendRecord(buf, recMessage, toDisk(&m))
	}
	if err := writeFile(dir, buf); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
