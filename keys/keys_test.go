package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/box"
)

func TestTextRoundTrip(t *testing.T) {
	kp, err := GenerateFrom(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	if kp.Secret.Public() != kp.Public {
		t.Fatal("Public() does not match the generated public key")
	}
	s := kp.Public.String()
	if !strings.HasPrefix(s, "pk:") || len(s) != 67 {
		t.Fatalf("text form %q", s)
	}
	for _, in := range []string{s, strings.TrimPrefix(s, "pk:"), " " + s + "\n"} {
		p, err := ParsePublicKey(in)
		if err != nil || !p.Equal(kp.Public) {
			t.Errorf("ParsePublicKey(%q) = %v, %v", in, p, err)
		}
	}
	if strings.Contains(kp.Secret.String(), kp.Secret.Text()[3:]) {
		t.Error("String() leaks the secret key")
	}
	var sk SecretKey
	if err := sk.UnmarshalText([]byte(kp.Secret.Text())); err != nil || sk != kp.Secret {
		t.Errorf("secret round trip: %v", err)
	}
	for _, bad := range []string{"", "pk:", "pk:" + strings.Repeat("g", 64), strings.Repeat("a", 63), "sk:" + strings.Repeat("a", 64)} {
		if _, err := ParsePublicKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParsePublicKey(%q) err = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestKeysWorkWithBox(t *testing.T) {
	a, _ := Generate()
	b, _ := Generate()
	var nonce [24]byte
	sealed := box.Seal(nil, []byte("hi"), &nonce, b.Public.Ptr(), a.Secret.Ptr())
	out, ok := box.Open(nil, sealed, &nonce, a.Public.Ptr(), b.Secret.Ptr())
	if !ok || string(out) != "hi" {
		t.Fatal("box round trip failed")
	}
}

func TestSecretKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	kp, _ := Generate()
	p := filepath.Join(dir, "k")
	if err := WriteSecretKeyFile(p, kp.Secret); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretKeyFile(p, kp.Secret); err == nil {
		t.Error("WriteSecretKeyFile replaced an existing file")
	}
	if k, err := LoadSecretKeyFile(p); err != nil || k != kp.Secret {
		t.Fatalf("load: %v", err)
	}
	os.Chmod(p, 0o644)
	_, err := LoadSecretKeyFile(p)
	if !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 key file: %v, want ErrKeyFileMode with advice", err)
	}
	os.WriteFile(filepath.Join(dir, "bad"), []byte("nonsense"), 0o600)
	if _, err := LoadSecretKeyFile(filepath.Join(dir, "bad")); !errors.Is(err, ErrBadKey) {
		t.Errorf("garbage key file: %v", err)
	}
}

func FuzzParsePublicKey(f *testing.F) {
	f.Add("pk:" + strings.Repeat("ab", 32))
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublicKey(s)
		if err != nil {
			return
		}
		k2, err := ParsePublicKey(k.String())
		if err != nil || k2 != k {
			t.Fatalf("round trip of %q failed", s)
		}
	})
}

func TestKeyPairValidate(t *testing.T) {
	kp, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		kp   KeyPair
		want error
	}{
		{"ok", kp, nil},
		{"no secret", KeyPair{Public: kp.Public}, ErrNoSecretKey},
		{"mismatch", KeyPair{Public: other.Public, Secret: kp.Secret}, ErrKeyMismatch},
	} {
		if err := tt.kp.Validate(); !errors.Is(err, tt.want) {
			t.Errorf("%s: Validate() = %v, want %v", tt.name, err, tt.want)
		}
	}
}
