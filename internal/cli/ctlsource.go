package cli

import (
	"context"
	"net/url"

	"github.com/skywire-mesh/skywire/internal/cli/rolectl"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/node"
	"github.com/skywire-mesh/skywire/viscript/web/nodemesh"
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

func (s ctlSource) Routes(ctx context.Context) ([]node.RouteInfo, error) {
	return rolectl.GetAs[[]node.RouteInfo](ctx, s.sock, "/routes")
}

func (s ctlSource) Sessions(ctx context.Context) ([]node.SessionInfo, error) {
	return rolectl.GetAs[[]node.SessionInfo](ctx, s.sock, "/sessions")
}

// Metrics scrapes the node's metrics over its control socket: the link
// and app counters the dashboard charts are those of [node] metrics.
func (s ctlSource) Metrics(ctx context.Context) (nodemesh.Families, error) {
	v, err := rolectl.GetAs[struct{ Text string }](ctx, s.sock, "/metrics")
	if err != nil {
		return nil, err
	}
	return nodemesh.ParseMetrics(v.Text)
}
