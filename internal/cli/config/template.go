package config

import (
	"fmt"

	"github.com/skywire-mesh/skywire/keys"
)

// Template returns the text `skywire config init` writes: an [identity]
// table holding kp, followed by the default config (which is commented).
func Template(defaults []byte, kp keys.KeyPair) []byte {
	head := fmt.Sprintf(`# skywire.toml — written by "skywire config init".
# This file holds a secret key: keep it mode 0600 (skywire refuses it otherwise).
# Check it with: skywire config check PATH

[identity]
# This node's address on the mesh. Share the public key; never the secret one.
public_key = %q
secret_key = %q

`, kp.Public.String(), kp.Secret.Text())
	return append([]byte(head), defaults...)
}
