package cli

import (
	"fmt"
	"io"
	"net/url"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/keys"
	"github.com/skywire-mesh/skywire/manager"
	"github.com/skywire-mesh/skywire/node"
)

func managerStatusCommand(e *env, ctl func(*ucli.Context) (string, error)) *ucli.Command {
	return &ucli.Command{
		Name:  "status",
		Usage: "the running manager's counters, admission mode and member count",
		Flags: []ucli.Flag{jsonFlag},
		Action: func(c *ucli.Context) error {
			return queryAt(e, c, ctl, "/stats", func(w io.Writer, s manager.Stats) {
				ms := s.Membership
				fmt.Fprintf(w, "admit          %s\n", ms.Admit)
				if ms.Admit == manager.AdmitMembers {
					fmt.Fprintf(w, "members        %d (invitations open: %d)\n", ms.Members, ms.Invites)
				}
				fmt.Fprintf(w, "refused        %d not members, %d invitations refused\n", ms.Refused, ms.InvitesRefused)
				fmt.Fprintf(w, "joined         %d, removed %d\n", ms.Joined, ms.Evicted)
				fmt.Fprintf(w, "registrations  %d\nroute requests %d (failed %d)\nrepairs        %d (routes lost %d)\nbad messages   %d\n",
					s.Registrations, s.RouteRequests, s.RoutesFailed, s.Repairs, s.RoutesLost, s.BadMessages)
			})
		},
	}
}

func membersCommand(e *env, ctl func(*ucli.Context) (string, error)) *ucli.Command {
	return &ucli.Command{
		Name:  "members",
		Usage: "members of the mesh: key, how admitted (config or joined), since when",
		Flags: []ucli.Flag{jsonFlag},
		Action: func(c *ucli.Context) error {
			return queryAt(e, c, ctl, "/members", func(w io.Writer, ms []manager.MemberInfo) {
				table(w, "MEMBER\tHOW\tSINCE\tREGISTERED", func(tw io.Writer) {
					for _, m := range ms {
						since := "-"
						if !m.Since.IsZero() {
							since = m.Since.Format(time.RFC3339)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", m.Key, m.How, since, m.Registered)
					}
				})
			})
		},
	}
}

func inviteCommand(e *env, ctl func(*ucli.Context) (string, error)) *ucli.Command {
	return &ucli.Command{
		Name:  "invite",
		Usage: "print an invitation token a node puts in join = \"…\" to become a member",
		Flags: []ucli.Flag{jsonFlag,
			&ucli.IntFlag{Name: "uses", Value: 1, Usage: "how many nodes may join with the token"},
			&ucli.DurationFlag{Name: "expires", Value: manager.DefaultInviteTTL, Usage: "how long the token is valid"},
		},
		Action: func(c *ucli.Context) error {
			path := fmt.Sprintf("/invite?uses=%d&expires=%s", c.Int("uses"), url.QueryEscape(c.Duration("expires").String()))
			return queryAt(e, c, ctl, path, func(w io.Writer, inv manager.Invitation) {
				fmt.Fprintln(w, inv.Token)
				fmt.Fprintf(e.stderr, "invitation %s: %d use(s), expires %s; put it in the joining node's config: join = \"TOKEN\"\n",
					inv.ID, inv.Uses, inv.Expires.Format(time.RFC3339))
			})
		},
	}
}

func removeCommand(e *env, ctl func(*ucli.Context) (string, error)) *ucli.Command {
	return &ucli.Command{
		Name:      "remove",
		Usage:     "evict a member that joined with an invitation (config members: edit the config)",
		ArgsUsage: "PUBKEY",
		Action: func(c *ucli.Context) error {
			if err := needArgs(c, 1); err != nil {
				return err
			}
			k, err := keys.ParsePublicKey(c.Args().First())
			if err != nil {
				return err
			}
			return queryAt(e, c, ctl, "/remove?key="+url.QueryEscape(k.String()), func(w io.Writer, _ map[string]string) {
				fmt.Fprintf(w, "removed %s: its links and routes are being torn down\n", k)
			})
		},
	}
}

func membershipSummary(m node.MembershipStatus) string {
	switch {
	case m.AcceptPeers != node.AcceptMembers:
		return "membership not used for links"
	case !m.Known:
		return "no manager has said who is a member yet: only configured peers are accepted"
	case m.Open:
		return "the manager admits every key"
	}
	return fmt.Sprintf("%d members known", m.Members)
}
