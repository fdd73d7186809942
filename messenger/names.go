package messenger

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/skywire-mesh/skywire/keys"
)

// Bounds of the name cache: the directory is read at most every
// namesTTL for display, and a read that does not answer in namesTimeout
// leaves the names as they were (a conversation list never waits long
// for names).
const (
	namesTTL     = 30 * time.Second
	namesTimeout = 3 * time.Second
)

// nameCache keeps the names nodes claim in the directory, to show beside
// keys (the conversation list, an opened conversation). Resolving a name
// typed by the user never uses it: that asks the directory (resolve).
type nameCache struct {
	mu     sync.Mutex // held across a refresh: one directory read at a time
	at     time.Time  // of the last read (successful or not)
	byKey  map[keys.PublicKey]string
	claims map[string]int // lower-cased name → nodes claiming it
}

// of returns the name pk's node claims and how many nodes claim it
// ("", 0 when unknown or without a directory).
func (c *nameCache) of(ctx context.Context, dir Directory, pk keys.PublicKey) (string, int) {
	if dir == nil {
		return "", 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= namesTTL {
		c.at = time.Now()
		ctx, cancel := context.WithTimeout(ctx, namesTimeout)
		nodes, err := dir.Nodes(ctx)
		cancel()
		if err == nil {
			c.byKey, c.claims = map[keys.PublicKey]string{}, map[string]int{}
			for _, n := range nodes {
				if n.Name != "" {
					c.byKey[n.Key] = n.Name
					c.claims[strings.ToLower(n.Name)]++
				}
			}
		}
	}
	name := c.byKey[pk]
	if name == "" {
		return "", 0
	}
	return name, c.claims[strings.ToLower(name)]
}
