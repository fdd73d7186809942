package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}
	dirty := []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}
	cases := []struct {
		name            string
		version, commit string
		settings        []debug.BuildSetting
		wantV, wantC    string
	}{
		{"make build", "v1.2.3", "feed", vcs, "v1.2.3", "feed"},
		{"plain go build", "dev", "", vcs, "dev+0123456789ab", rev},
		{"plain go build, changes", "dev", "", dirty, "dev+0123456789ab-dirty", rev},
		{"linker commit only", "dev", "beef", nil, "dev", "beef"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i := get(c.version, c.commit, c.settings)
			if i.Version != c.wantV || i.Commit != c.wantC {
				t.Fatalf("got %q %q, want %q %q", i.Version, i.Commit, c.wantV, c.wantC)
			}
		})
	}
	if i := get("dev", "", nil); !strings.HasPrefix(i.Commit, "unknown (") {
		t.Fatalf("no stamp at all: commit %q, want it to say how to get one", i.Commit)
	}
}
