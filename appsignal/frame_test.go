package appsignal

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    []byte
		wantErr error
	}{
		{"empty body", []byte{0, 0, 0, 0}, 0, []byte{}, nil},
		{"small body", []byte{0, 0, 0, 3, 'a', 'b', 'c'}, 0, []byte("abc"), nil},
		{"exactly max", []byte{0, 0, 0, 2, 'a', 'b'}, 2, []byte("ab"), nil},
		{"one over max", []byte{0, 0, 0, 3, 'a', 'b', 'c'}, 2, nil, ErrFrameTooLarge},
		{"4 GiB length", []byte{0xff, 0xff, 0xff, 0xff}, 0, nil, ErrFrameTooLarge},
		{"default max + 1", []byte{0, 1, 0, 1}, 0, nil, ErrFrameTooLarge},
		{"no bytes", nil, 0, nil, io.EOF},
		{"short header", []byte{0, 0}, 0, nil, io.ErrUnexpectedEOF},
		{"short body", []byte{0, 0, 0, 5, 'a'}, 0, nil, io.ErrUnexpectedEOF},
		{"header only", []byte{0, 0, 0, 1}, 0, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFrame(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("body = %q, want %q", got, tt.want)
			}
		})
	}
}

// countingReader fails the test if ReadFrame reads past the header of an
// oversized frame (it must reject before reading or allocating the body).
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadFrameRejectsBeforeReadingBody(t *testing.T) {
	in := append([]byte{0xff, 0xff, 0xff, 0xff}, make([]byte, 100)...)
	cr := &countingReader{r: bytes.NewReader(in)}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		cr.r, cr.n = bytes.NewReader(in), 0
		if _, err := ReadFrame(cr, 0); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("err = %v", err)
		}
		if cr.n != 4 {
			t.Fatalf("read %d bytes, want 4 (header only)", cr.n)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 100<<10 { // the error values only
		t.Errorf("100 rejected frames allocated %d bytes", d)
	}
}

func TestWriteFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 65535, MaxFrameSize} {
		body := bytes.Repeat([]byte{0xa5}, n)
		var buf bytes.Buffer
		if err := WriteFrame(&buf, body); err != nil {
			t.Fatalf("WriteFrame(%d): %v", n, err)
		}
		if buf.Len() != 4+n {
			t.Fatalf("frame of %d-byte body is %d bytes", n, buf.Len())
		}
		got, err := ReadFrame(&buf, MaxFrameSize)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("ReadFrame after WriteFrame(%d): %v", n, err)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 5, 'a'})
	f.Add([]byte{0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1024
		body, err := ReadFrame(bytes.NewReader(in), max)
		if err != nil {
			return
		}
		if len(body) > max {
			t.Fatalf("body of %d bytes exceeds max %d", len(body), max)
		}
		var buf bytes.Buffer
		if err := WriteFrame(&buf, body); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), in[:4+len(body)]) {
			t.Fatalf("re-encoded frame %x differs from input prefix %x", buf.Bytes(), in[:4+len(body)])
		}
	})
}
