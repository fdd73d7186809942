package secure

// PacketCipher seals and opens whole datagrams of one session in explicit
// mode (counter prefix, replay window). It has the shape of the Cipher that
// end-to-end sessions over routes take (internal/session): Seal, Open and
// Overhead. Seal and Open are each safe for concurrent use.
type PacketCipher struct {
	send *Sealer
	recv *Opener
}

// PacketCipher returns s's two directions as a datagram cipher.
func (s *Session) PacketCipher() *PacketCipher { return &PacketCipher{send: s.Send, recv: s.Recv} }

// Seal appends the sealed packet (counter and ciphertext) to dst.
func (c *PacketCipher) Seal(dst, plaintext []byte) []byte { return c.send.SealExplicit(dst, plaintext) }

// Open appends the plaintext of packet to dst; see Opener.OpenExplicit.
func (c *PacketCipher) Open(dst, packet []byte) ([]byte, error) {
	return c.recv.OpenExplicit(dst, packet)
}

// Overhead is the number of bytes Seal adds.
func (c *PacketCipher) Overhead() int { return ExplicitOverhead }
