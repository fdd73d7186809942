package tstest

import (
	"io"
	"net"
	"runtime"
	"testing"
)

// ReportConnMemory is the body of a benchmark of idle connections: it
// opens n connected pairs with open, sends one byte each way on each (so
// that every copy loop in between has run once), and reports the heap
// and stack that they hold per pair, as heapB/unit and stackB/unit
// (unit: "conn", "stream"). Then it closes them.
func ReportConnMemory(b *testing.B, n int, unit string, open func() (net.Conn, net.Conn)) {
	b.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, 2*n)
	one := make([]byte, 1)
	for range n {
		c, far := open()
		c.Write(one)
		far.Write(one)
		io.ReadFull(c, one)
		io.ReadFull(far, one)
		conns = append(conns, c, far)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(n), "heapB/"+unit)
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(n), "stackB/"+unit)
	for _, c := range conns {
		c.Close()
	}
}
