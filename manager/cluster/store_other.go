//go:build !(386 || amd64 || arm || arm64 || ppc || ppc64 || ppc64le || s390x || riscv64 || loong64)

package cluster

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/hashicorp/raft"
)

type raftStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// ErrNoStore: raft-boltdb imports github.com/boltdb/bolt, which does not
// build for this architecture (mips, for one), so a manager built for it
// cannot keep a durable raft log and cannot be a cluster member. A
// single manager (no [manager] cluster) works as everywhere.
var ErrNoStore = errors.New("no durable raft store for this architecture")

func openStore(string) (raftStore, error) {
	return nil, fmt.Errorf("%w (%s): run cluster members on amd64, arm or arm64", ErrNoStore, runtime.GOARCH)
}
