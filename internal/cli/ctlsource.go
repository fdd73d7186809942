package cli

import (
	"context"
	"net/url"

	"github.com/skywire-mesh/skywire/appnet/appserver"
	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
)

// ctlSource reads a node over its control socket: the directory and
// routes (for the messenger's peers and names) and everything else the
// dashboard shows.
type ctlSource struct{ sock string }

func (s ctlSource) Directory(ctx context.Context) ([]node.DirectoryEntry, error) {
	return rolectl.GetAs[[]node.DirectoryEntry](ctx, s.sock, "/directory")
}

func (s ctlSource) RouteTo(ctx context.Context, remote keys.PublicKey) (node.PathInfo, error) {
	return rolectl.GetAs[node.PathInfo](ctx, s.sock, "/route?to="+url.QueryEscape(remote.String()))
}

func (s ctlSource) Status(ctx context.Context) (node.Status, error) {
	return rolectl.GetAs[node.Status](ctx, s.sock, "/status")
}

func (s ctlSource) Links(ctx context.Context) ([]node.LinkInfo, error) {
	return rolectl.GetAs[[]node.LinkInfo](ctx, s.sock, "/links")
}

func (s ctlSource) Routes(ctx context.Context) ([]node.RouteInfo, error) {
	return rolectl.GetAs[[]node.RouteInfo](ctx, s.sock, "/routes")
}

func (s ctlSource) Sessions(ctx context.Context) ([]node.SessionInfo, error) {
	return rolectl.GetAs[[]node.SessionInfo](ctx, s.sock, "/sessions")
}

func (s ctlSource) Apps(ctx context.Context) ([]appserver.AppInfo, error) {
	return rolectl.GetAs[[]appserver.AppInfo](ctx, s.sock, "/apps")
}
