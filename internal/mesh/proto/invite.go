package proto

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Invitation tokens let a node that is not yet a member of a mesh join it:
// the manager's operator creates one (`skywire manager invite`), the node
// presents it in Hello.Join on its first contact.
//
// Text form (63 characters):
//
//	swinv1-IIIIIIIIIIIIIIII SSSS…(32 hex)…SSSS CCCCCCCC    (no spaces)
//
// "swinv1-" names the format and its version; then hex of 28 bytes: an
// 8-byte ID (how the manager finds the invitation), a 16-byte secret
// (crypto/rand, 128 bits: the part that cannot be guessed) and a 4-byte
// check (the first 4 bytes of SHA-256 over "skywire invite v1", ID and
// secret) so that a token mangled in copying is told apart from an unknown
// one before anything is sent. The manager stores only the ID and
// SHA-256 of the secret (InviteToken.Hash).

// InvitePrefix starts every invitation token.
const InvitePrefix = "swinv1-"

const (
	inviteIDLen     = 8
	inviteSecretLen = 16
	inviteCheckLen  = 4
	inviteRawLen    = inviteIDLen + inviteSecretLen + inviteCheckLen
	// InviteLen is the length of a token's text form.
	InviteLen = len(InvitePrefix) + 2*inviteRawLen
)

// ErrBadInvite is wrapped by ParseInvite errors.
var ErrBadInvite = errors.New("bad invitation token")

// InviteToken is a parsed invitation token.
type InviteToken struct {
	ID     [inviteIDLen]byte
	Secret [inviteSecretLen]byte
}

// NewInvite makes a token with a random ID and secret.
func NewInvite() (InviteToken, error) {
	var t InviteToken
	if _, err := rand.Read(t.ID[:]); err != nil {
		return t, fmt.Errorf("new invitation: %w", err)
	}
	if _, err := rand.Read(t.Secret[:]); err != nil {
		return t, fmt.Errorf("new invitation: %w", err)
	}
	return t, nil
}

func (t InviteToken) check() [inviteCheckLen]byte {
	h := sha256.New()
	h.Write([]byte("skywire invite v1"))
	h.Write(t.ID[:])
	h.Write(t.Secret[:])
	var c [inviteCheckLen]byte
	copy(c[:], h.Sum(nil))
	return c
}

// String is the token's text form.
func (t InviteToken) String() string {
	c := t.check()
	raw := make([]byte, 0, inviteRawLen)
	raw = append(append(append(raw, t.ID[:]...), t.Secret[:]...), c[:]...)
	return InvitePrefix + hex.EncodeToString(raw)
}

// IDString is the hex form of the token's ID, which names the invitation
// (it is not secret).
func (t InviteToken) IDString() string { return hex.EncodeToString(t.ID[:]) }

// Hash is what a manager stores to recognise the token: SHA-256 of its
// secret.
func (t InviteToken) Hash() [32]byte { return sha256.Sum256(t.Secret[:]) }

// MatchesHash reports in constant time whether the token's secret hashes
// to h.
func (t InviteToken) MatchesHash(h [32]byte) bool {
	mine := t.Hash()
	return subtle.ConstantTimeCompare(mine[:], h[:]) == 1
}

// ParseInvite parses a token's text form (surrounding white space is
// ignored). Errors wrap ErrBadInvite and say what is wrong.
func ParseInvite(s string) (InviteToken, error) {
	var t InviteToken
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, InvitePrefix) {
		return t, fmt.Errorf("%w: it does not start with %q (get one with: skywire manager invite)", ErrBadInvite, InvitePrefix)
	}
	body := s[len(InvitePrefix):]
	if len(body) != 2*inviteRawLen {
		return t, fmt.Errorf("%w: %d characters after %q, want %d (was it cut or joined with something when copied?)", ErrBadInvite, len(body), InvitePrefix, 2*inviteRawLen)
	}
	raw, err := hex.DecodeString(body)
	if err != nil {
		return t, fmt.Errorf("%w: not hexadecimal after %q", ErrBadInvite, InvitePrefix)
	}
	copy(t.ID[:], raw[:inviteIDLen])
	copy(t.Secret[:], raw[inviteIDLen:inviteIDLen+inviteSecretLen])
	c := t.check()
	if subtle.ConstantTimeCompare(c[:], raw[inviteIDLen+inviteSecretLen:]) != 1 {
		return InviteToken{}, fmt.Errorf("%w: check digits do not match (the token was mangled; copy it again in full)", ErrBadInvite)
	}
	return t, nil
}
