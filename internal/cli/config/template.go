package config

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/skywire-mesh/skywire/keys"
)

// ManagerKeyPlaceholder and ManagerAddrPlaceholder stand where `skywire
// config init --node` did not get the manager's key and address; Parse
// refuses a file that still holds them, saying what to put there.
const (
	ManagerKeyPlaceholder  = "pk:PUT-THE-MANAGERS-PUBLIC-KEY-HERE"
	ManagerAddrPlaceholder = "MANAGER-HOST:7900"
)

// DefaultManagerListen and DefaultNodeListen are the listen addresses
// `config init` writes unless told others.
const (
	DefaultManagerListen = "0.0.0.0:7900"
	DefaultNodeListen    = "0.0.0.0:7901"
)

// NodeTemplate says what `config init --node` writes.
type NodeTemplate struct {
	Identity    keys.KeyPair
	ListenAddr  string         // DefaultNodeListen when empty
	ManagerKey  keys.PublicKey // zero: the placeholder
	ManagerAddr string         // empty: the placeholder
	Join        string         // an invitation token, or empty
	Name        string         // [node] name (checked by the caller), or empty
}

// ManagerTemplate says what `config init --manager` writes.
type ManagerTemplate struct {
	Identity   keys.KeyPair
	ListenAddr string // DefaultManagerListen when empty
}

const templateHead = `# skywire.toml — %s, written by "skywire config init %s".
# This file holds a secret key: keep it mode 0600 (skywire refuses it otherwise).
# Check it with: skywire config check PATH
# Every key is documented in the skywire.toml shipped with skywire
# (skywire config init --demo writes it).

[identity]
# This machine's key pair. The public key is its address on the mesh: give it
# to whoever needs it. Never give out the secret key.
public_key = %q
secret_key = %q

[viscript]
# State (sockets, app table, logs). Empty: $SKYWIRE_STATE_DIR, else
# /var/lib/skywire for root, else ~/.local/state/skywire.
state_dir = ""
`

// NodeConfig returns the text of a node's config: its own [identity], a
// [node] that uses it and registers with one manager, and [apps.node] so
// that viscript runs it.
func NodeConfig(t NodeTemplate) []byte {
	listen := t.ListenAddr
	if listen == "" {
		listen = DefaultNodeListen
	}
	mkey, maddr, note := ManagerKeyPlaceholder, ManagerAddrPlaceholder,
		"# PLACEHOLDER: put the manager's public key and address here. On the manager's\n# machine, `skywire config init --manager` printed them.\n"
	if !t.ManagerKey.IsZero() {
		mkey, note = t.ManagerKey.String(), ""
	}
	if t.ManagerAddr != "" {
		maddr = t.ManagerAddr
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, templateHead, "a mesh node", "--node", t.Identity.Public.String(), t.Identity.Secret.Text())
	fmt.Fprintf(&b, `
[node]
identity = ""                    # "" = the [identity] above
# Where peers link to this node ("" = it only dials out). Open this port.
listen_addr = %q
# The manager this node registers with. A manager with a real identity admits
# only members: its operator lists this node's public key in [manager]
# members, or gives you an invitation for join below.
%smanagers = [{ public_key = %q, addr = %q }]
`, listen, note, mkey, maddr)
	if t.Join != "" {
		fmt.Fprintf(&b, "join = %q                # presented until the manager admits this node\n", t.Join)
	} else {
		b.WriteString("# join = \"swinv1-…\"             # an invitation from `skywire manager invite`\n")
	}
	b.WriteString(`# The name others see beside this node's key and may use in its place
# (skywire ping kitchen-pi): 1-63 ASCII letters, digits, '-', '_', '.'.
# A claim, not an identity: another node may claim the same name.
`)
	if t.Name != "" {
		fmt.Fprintf(&b, "name = %q\n", t.Name)
	} else {
		b.WriteString("# name = \"kitchen-pi\"\n")
	}
	b.WriteString(`# Nodes this node links to (members of the same mesh), each a public key
# and the address it listens on:
# peers = [{ public_key = "pk:…", addr = "198.51.100.2:7901" }]
`)
	b.WriteString(appTemplate("node", "this mesh node"))
	return b.Bytes()
}

// ManagerConfigText returns the text of a manager's config: its own
// [identity], a [manager] that uses it and admits members only, and
// [apps.manager] so that viscript runs it.
func ManagerConfigText(t ManagerTemplate) []byte {
	listen := t.ListenAddr
	if listen == "" {
		listen = DefaultManagerListen
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, templateHead, "a mesh manager", "--manager", t.Identity.Public.String(), t.Identity.Secret.Text())
	fmt.Fprintf(&b, `
[manager]
identity = ""                    # "" = the [identity] above; nodes put its public key in their managers
listen_addr = %q       # nodes register here. Open this port.
# Who may register: "members" (the default with a real identity): keys listed
# in members, and nodes that joined with a token from "skywire manager invite".
# admit = "members"
# members = ["pk:…", "pk:…"]
`, listen)
	b.WriteString(appTemplate("manager", "the mesh manager"))
	return b.Bytes()
}

// appTemplate is the [apps.ROLE] table with which viscript runs role as a
// daemon.
func appTemplate(role, desc string) string {
	return fmt.Sprintf(`
# What viscript runs: skywire viscript -c 'start %s', or the systemd unit.
[apps.%s]
desc = %q
default_args = [%q]
daemon = true
restart = "on-failure"
`, role, role, desc, role)
}

// DemoConfig returns the demo mesh config as `config init --demo` writes
// it: the shipped default, whose identities are demo keys on loopback.
func DemoConfig(defaults []byte) []byte {
	return append([]byte("# skywire.toml — the loopback demo mesh, written by \"skywire config init --demo\".\n"+
		"# For a real mesh: skywire config init --manager / --node.\n#\n"), defaults...)
}

// checkPlaceholders finds a placeholder `config init --node` left in a
// line that is not a comment.
func checkPlaceholders(data []byte, name string) error {
	for i, line := range strings.Split(string(data), "\n") {
		code, _, _ := strings.Cut(line, "#")
		if strings.Contains(code, ManagerKeyPlaceholder) || strings.Contains(code, ManagerAddrPlaceholder) {
			return &Error{File: name, Line: i + 1, Key: "node.managers", Msg: "still holds the placeholder of `skywire config init --node`: put the manager's public key and address there " +
				"(`skywire config init --manager` printed them on the manager's machine; or run config init --node again with --manager-key and --manager-addr)"}
		}
	}
	return nil
}
