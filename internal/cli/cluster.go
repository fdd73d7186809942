package cli

import (
	"fmt"
	"io"
	"net/url"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager/cluster"
)

func clusterCommand(e *env, ctl func(*ucli.Context) (string, error)) *ucli.Command {
	return &ucli.Command{
		Name:  "cluster",
		Usage: "the raft cluster of managers ([manager] cluster): status, add or remove a member",
		Subcommands: []*ucli.Command{
			{
				Name:  "status",
				Usage: "the leader, the term and every member's state and log index",
				Flags: []ucli.Flag{jsonFlag},
				Action: func(c *ucli.Context) error {
					return queryAt(e, c, ctl, "/cluster", printClusterStatus)
				},
			},
			{
				Name:      "add",
				Usage:     "add a member (at any member: a follower forwards it to the leader; start the new manager with join = true first)",
				ArgsUsage: "ID RAFT_ADDR PUBKEY",
				Action: func(c *ucli.Context) error {
					if err := needArgs(c, 3); err != nil {
						return err
					}
					id, addr := c.Args().Get(0), c.Args().Get(1)
					k, err := keys.ParsePublicKey(c.Args().Get(2))
					if err != nil {
						return err
					}
					path := "/cluster/add?id=" + url.QueryEscape(id) + "&raft_addr=" + url.QueryEscape(addr) + "&key=" + url.QueryEscape(k.String())
					return queryAt(e, c, ctl, path, func(w io.Writer, _ map[string]string) {
						fmt.Fprintf(w, "added %s (%s, %s) as a voting member\n", id, addr, k.Short())
					})
				},
			},
			{
				Name:      "remove",
				Usage:     "remove a member (at any member); drop it from the others' peers too",
				ArgsUsage: "ID",
				Action: func(c *ucli.Context) error {
					if err := needArgs(c, 1); err != nil {
						return err
					}
					id := c.Args().First()
					return queryAt(e, c, ctl, "/cluster/remove?id="+url.QueryEscape(id), func(w io.Writer, _ map[string]string) {
						fmt.Fprintf(w, "removed %s from the cluster\n", id)
					})
				},
			},
		},
	}
}

func printClusterStatus(w io.Writer, st cluster.Status) {
	leader := "none (no quorum, or an election is running)"
	if st.LeaderID != "" {
		leader = fmt.Sprintf("%s (%s, %s)", st.LeaderID, st.LeaderAddr, st.LeaderKey.Short())
	}
	fmt.Fprintf(w, "this member   %s (%s)\nleader        %s\nterm          %d\nlog           last %d, committed %d, applied %d\nreplicated    %d routes, %d nodes\n",
		st.ID, st.State, leader, st.Term, st.LastIndex, st.CommitIndex, st.AppliedIndex, st.Routes, st.Nodes)
	table(w, "MEMBER\tRAFT ADDR\tKEY\tSTATE\tTERM\tLAST INDEX\tAPPLIED", func(tw io.Writer) {
		for _, m := range st.Members {
			state := m.State
			if m.Err != "" {
				state = "unreachable: " + m.Err
			}
			if !m.Voter {
				state += " (non-voter)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", m.ID, m.RaftAddr, m.PublicKey.Short(), state, m.Term, m.LastIndex, m.AppliedIndex)
		}
	})
}
