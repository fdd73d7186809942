//go:build 386 || amd64 || arm || arm64 || ppc || ppc64 || ppc64le || s390x || riscv64 || loong64

package cluster

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// raftStore is the log and stable store: one bbolt file (raft-boltdb).
type raftStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

func openStore(path string) (raftStore, error) {
	s, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if errors.Is(err, bbolt.ErrTimeout) {
		err = fmt.Errorf("%w (is another manager using this data_dir?)", err)
	}
	return s, err
}
