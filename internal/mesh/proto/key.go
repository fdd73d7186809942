package proto

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/skywire-mesh/skywire/keys"
)

// Key is a public key on the wire: a msgpack bin 8 of exactly 32 bytes
// (c4 20 + 32 bytes). keys.PublicKey itself would be written as text.
type Key keys.PublicKey

// PublicKey converts k back to the key type.
func (k Key) PublicKey() keys.PublicKey { return keys.PublicKey(k) }

// EncodeMsgpack implements msgpack.CustomEncoder.
func (k Key) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeBytes(k[:]) }

// DecodeMsgpack implements msgpack.CustomDecoder; anything but a 32-byte
// binary is an error.
func (k *Key) DecodeMsgpack(dec *msgpack.Decoder) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if c != msgpcode.Bin8 {
		return fmt.Errorf("%w: key is not a binary (code %#x)", ErrMalformed, c)
	}
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return err
	}
	if n != len(k) {
		return fmt.Errorf("%w: key of %d bytes", ErrMalformed, n)
	}
	return dec.ReadFull(k[:])
}
