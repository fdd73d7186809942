package viscript

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skywire-mesh/skywire/appnet/fakemesh"
	"github.com/skywire-mesh/skywire/internal/tstest"
	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/viscript/control"
	"github.com/skywire-mesh/skywire/viscript/remote"
)

// TestRunRemoteAndReloadAdmins: with a NodeSocket, Run serves remote
// control to Admins; Reload re-reads them through LoadAdmins and a removed
// admin is refused on its open connection.
func TestRunRemoteAndReloadAdmins(t *testing.T) {
	tstest.CheckLeaks(t)
	n := fakemesh.New()
	here := fakemesh.ServeNode(t, n, "here")
	admin := fakemesh.ServeNode(t, n, "admin")
	e := newEnv(t)
	var mu sync.Mutex
	admins := []keys.PublicKey{admin.PublicKey()}
	e.cfg.NodeSocket = here.Path
	e.cfg.Admins = admins
	e.cfg.LoadCatalog = func() (map[string]AppSpec, error) { return catalog(), nil }
	e.cfg.LoadAdmins = func() ([]keys.PublicKey, error) {
		mu.Lock()
		defer mu.Unlock()
		return admins, nil
	}
	s := e.open()
	e.run(s)

	d := &remote.Dialer{NodeSocket: admin.Path}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tstest.Scaled(20*time.Second))
	defer cancel()
	var c *control.Client
	tstest.WaitFor(t, "remote control on the mesh", func() bool {
		var err error
		c, err = d.Dial(ctx, here.PublicKey())
		return err == nil
	})
	defer c.Close()
	cat, err := c.Catalog(ctx)
	if err != nil || len(cat) != len(catalog()) {
		t.Fatalf("Catalog over the mesh: %v %v", cat, err)
	}

	mu.Lock()
	admins = nil
	mu.Unlock()
	r, err := s.Reload(ctx)
	if err != nil || len(r.AdminsRemoved) != 1 || r.AdminsRemoved[0] != admin.PublicKey().String() {
		t.Fatalf("Reload = %+v, %v; want the admin removed", r, err)
	}
	if _, err := c.List(ctx); !errors.Is(err, control.ErrUnauthorized) || !strings.Contains(err.Error(), admin.PublicKey().String()) {
		t.Errorf("removed admin after reload: %v", err)
	}
}
