package appnet

import (
	"bufio"
	"io"
)

// controlReadBuffer is the read buffer of the control connection: large
// enough for several full-size datagrams per system call.
const controlReadBuffer = 256 << 10

func newReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, controlReadBuffer) }
