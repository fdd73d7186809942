// Package keys holds skywire's identity keys: curve25519 key pairs as used by
// golang.org/x/crypto/nacl/box. Keys are types with a prefixed text form
// ("pk:" + 64 hex digits for public keys, "sk:" + 64 hex digits for secret
// keys); a bare 64-digit hex string is accepted when parsing.
package keys

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

const (
	publicPrefix = "pk:"
	secretPrefix = "sk:"
	keyLen       = 32
)

// ErrBadKey is wrapped by every parse error.
var ErrBadKey = errors.New("bad key")

// Errors from KeyPair.Validate.
var (
	ErrNoSecretKey = errors.New("no secret key")
	ErrKeyMismatch = errors.New("public key does not match the secret key")
)

// PublicKey is a node's or app's public curve25519 key; it is also its
// address on the mesh.
type PublicKey [keyLen]byte

// SecretKey is a curve25519 secret key. Its String method never prints it.
type SecretKey [keyLen]byte

// KeyPair is a secret key with its public key.
type KeyPair struct {
	Public PublicKey
	Secret SecretKey
}

// Generate returns a fresh key pair from crypto/rand.
func Generate() (KeyPair, error) { return GenerateFrom(rand.Reader) }

// GenerateFrom returns a key pair read from r (tests pass a fixed reader).
func GenerateFrom(r io.Reader) (KeyPair, error) {
	pub, sec, err := box.GenerateKey(r)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate key pair: %w", err)
	}
	return KeyPair{Public: PublicKey(*pub), Secret: SecretKey(*sec)}, nil
}

// Validate reports whether kp can be used as an identity: it has a secret
// key and its public key is the one the secret key derives.
func (kp KeyPair) Validate() error {
	switch {
	case kp.Secret.IsZero():
		return ErrNoSecretKey
	case kp.Secret.Public() != kp.Public:
		return ErrKeyMismatch
	}
	return nil
}

// Public derives the public key of s.
func (s SecretKey) Public() PublicKey {
	var pub PublicKey
	curve25519.ScalarBaseMult((*[32]byte)(&pub), (*[32]byte)(&s))
	return pub
}

// Pair returns the key pair made of s and its public key.
func (s SecretKey) Pair() KeyPair { return KeyPair{Public: s.Public(), Secret: s} }

// IsZero reports whether s is all zeros (unset).
func (s SecretKey) IsZero() bool { var z SecretKey; return subtle.ConstantTimeCompare(s[:], z[:]) == 1 }

// String never reveals the key.
func (s SecretKey) String() string { return "sk:<secret>" }

// Text returns the full text form, "sk:" and 64 hex digits. Use it only to
// write a key file or a config.
func (s SecretKey) Text() string { return secretPrefix + hex.EncodeToString(s[:]) }

// MarshalText implements encoding.TextMarshaler with the full text form.
func (s SecretKey) MarshalText() ([]byte, error) { return []byte(s.Text()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *SecretKey) UnmarshalText(b []byte) error { return setParsed(s, ParseSecretKey, b) }

// Ptr returns s as the array pointer nacl/box functions take.
func (s *SecretKey) Ptr() *[32]byte { return (*[32]byte)(s) }

// String returns "pk:" and 64 hex digits.
func (k PublicKey) String() string { return publicPrefix + hex.EncodeToString(k[:]) }

// Short returns a short form for logs and tables: "pk:" and 8 hex digits.
func (k PublicKey) Short() string { return publicPrefix + hex.EncodeToString(k[:4]) }

// Hex returns the 64 hex digits without prefix.
func (k PublicKey) Hex() string { return hex.EncodeToString(k[:]) }

// Equal compares in constant time.
func (k PublicKey) Equal(o PublicKey) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// IsZero reports whether k is all zeros (unset).
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// Ptr returns k as the array pointer nacl/box functions take.
func (k *PublicKey) Ptr() *[32]byte { return (*[32]byte)(k) }

// MarshalText implements encoding.TextMarshaler.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *PublicKey) UnmarshalText(b []byte) error { return setParsed(k, ParsePublicKey, b) }

// setParsed sets *dst to parse(b); on an error *dst is left as it was.
func setParsed[K any](dst *K, parse func(string) (K, error), b []byte) error {
	k, err := parse(string(b))
	if err == nil {
		*dst = k
	}
	return err
}

// ParsePublicKey parses "pk:<64 hex>" or bare "<64 hex>".
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	if err := parse(s, publicPrefix, "public", k[:]); err != nil {
		return PublicKey{}, err
	}
	return k, nil
}

// ParseSecretKey parses "sk:<64 hex>" or bare "<64 hex>".
func ParseSecretKey(s string) (SecretKey, error) {
	var k SecretKey
	if err := parse(s, secretPrefix, "secret", k[:]); err != nil {
		return SecretKey{}, err
	}
	return k, nil
}

func parse(s, prefix, what string, dst []byte) error {
	s = strings.TrimSpace(s)
	body := strings.TrimPrefix(s, prefix)
	if len(body) != 2*keyLen {
		return fmt.Errorf("%w: %s key must be %q followed by %d hex digits, got %d characters", ErrBadKey, what, prefix, 2*keyLen, len(s))
	}
	if _, err := hex.Decode(dst, []byte(body)); err != nil {
		return fmt.Errorf("%w: %s key is not hex: %v", ErrBadKey, what, err)
	}
	return nil
}

// ErrKeyFileMode is returned by LoadSecretKeyFile for a file that others can read.
var ErrKeyFileMode = errors.New("secret key file must not be readable by group or others")

// LoadSecretKeyFile reads a secret key from a file holding its text form.
// The file must have mode 0600 (or stricter); otherwise it is refused.
func LoadSecretKeyFile(path string) (SecretKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return SecretKey{}, fmt.Errorf("open secret key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return SecretKey{}, fmt.Errorf("stat secret key: %w", err)
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return SecretKey{}, fmt.Errorf("%s has mode %#o: %w (run: chmod 600 %s)", path, mode, ErrKeyFileMode, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return SecretKey{}, fmt.Errorf("read secret key %s: %w", path, err)
	}
	k, err := ParseSecretKey(string(b))
	if err != nil {
		return SecretKey{}, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return k, nil
}

// WriteSecretKeyFile writes s to path with mode 0600. It refuses to replace
// an existing file.
func WriteSecretKeyFile(path string, s SecretKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	if _, err := f.WriteString(s.Text() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write secret key %s: %w", path, err)
	}
	return f.Close()
}
