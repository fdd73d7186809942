package config

import (
	"os"

	"github.com/skywire-mesh/skywire/apps/socks"
	"github.com/skywire-mesh/skywire/apps/vpn"
	"github.com/skywire-mesh/skywire/messenger"
)

// EnvNodeSocket overrides which node's app socket an app uses.
const EnvNodeSocket = "SKYWIRE_NODE_SOCKET"

// AppNode is what every app section adds to its package's config: which
// local node the app registers with.
type AppNode struct {
	// Node names the node profile whose app socket the app uses: "" is
	// [node], "NAME" is [nodes.NAME]. node_socket, when set, wins; so does
	// $SKYWIRE_NODE_SOCKET.
	Node string `toml:"node"`
}

// RoleMetrics is what every app section adds for its metrics endpoint.
type RoleMetrics struct {
	// Metrics, if set, is the host:port where the role serves Prometheus
	// metrics (docs/metrics.md); the role's --metrics flag overrides it.
	Metrics string `toml:"metrics"`
}

// SocksClientSection is [socks_client].
type SocksClientSection struct {
	socks.ClientConfig
	AppNode
	RoleMetrics
}

// SocksServerSection is [socks_server].
type SocksServerSection struct {
	socks.ServerConfig
	AppNode
	RoleMetrics
}

// VPNClientSection is [vpn_client].
type VPNClientSection struct {
	vpn.ClientConfig
	AppNode
	RoleMetrics
}

// VPNServerSection is [vpn_server].
type VPNServerSection struct {
	vpn.ServerConfig
	AppNode
	RoleMetrics
}

// MessengerSection is [messenger].
type MessengerSection struct {
	messenger.Config
	AppNode
	RoleMetrics
}

// defaultFile is what a config holds before the file is decoded over it:
// the apps' defaults (the mesh roles' Validate fills theirs).
func defaultFile() File {
	var f File
	f.SocksClient.ClientConfig = socks.DefaultClientConfig()
	f.SocksServer.ServerConfig = socks.DefaultServerConfig()
	f.VPNClient.ClientConfig = vpn.DefaultClientConfig()
	f.VPNServer.ServerConfig = vpn.DefaultServerConfig()
	f.Messenger.Config = messenger.DefaultConfig()
	return f
}

// NodeSockets resolves an app's node: the app socket it registers on and
// the node's control socket. explicit is the section's node_socket.
func (f *File) NodeSockets(table string, an AppNode, explicit string) (appSock, ctlSock string, err error) {
	_, sec, err := f.NodeProfile(an.Node)
	if err != nil {
		if an.Node != "" {
			return "", "", &Error{File: f.Path, Key: table + ".node", Msg: err.Error()}
		}
		// No usable [node] here (its identity may live elsewhere): the
		// default socket paths still apply.
		sec = f.Node
		sec.AppSocket, sec.ControlSocket = f.defaultSockets("")
	}
	appSock = sec.AppSocket
	if e := os.Getenv(EnvNodeSocket); e != "" {
		appSock = e
	}
	if explicit != "" {
		appSock = explicit
	}
	return appSock, sec.ControlSocket, nil
}
