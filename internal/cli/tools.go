package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/internal/cli/buildinfo"
	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/internal/mesh/proto"
	"github.com/skywire-mesh/skywire/keys"
)

func configCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:  "config",
		Usage: "write, check or locate skywire.toml",
		Subcommands: []*ucli.Command{
			{
				Name:      "init",
				Usage:     "write a commented config: --node, --manager (each with a fresh key pair) or --demo",
				ArgsUsage: "[PATH]",
				Description: `Writes PATH (default ./skywire.toml, mode 0600):
  --manager   a mesh manager with its own key pair; prints the public key and
              address that nodes put in their managers
  --node      a mesh node with its own key pair, registering with the manager
              given by --manager-key and --manager-addr (without them, a
              marked placeholder that config check refuses until filled in);
              --name NAME writes [node] name, checked as config check does
  --demo      the loopback demo mesh (manager and nodes a, b, c with public
              demo keys), as built into the binary`,
				Flags: []ucli.Flag{
					&ucli.BoolFlag{Name: "node", Usage: "write a node's config"},
					&ucli.BoolFlag{Name: "manager", Usage: "write a manager's config"},
					&ucli.BoolFlag{Name: "demo", Usage: "write the loopback demo mesh"},
					&ucli.StringFlag{Name: "manager-key", Usage: "--node: the manager's public key (pk:…)"},
					&ucli.StringFlag{Name: "manager-addr", Usage: "--node: the manager's address, HOST:PORT"},
					&ucli.StringFlag{Name: "join", Usage: "--node: an invitation token (swinv1-…) from skywire manager invite"},
					&ucli.StringFlag{Name: "name", Usage: "--node: the name shown beside this node's key and accepted in its place ([node] name, such as kitchen-pi)"},
					&ucli.StringFlag{Name: "listen", Usage: "listen address (default " + config.DefaultNodeListen + " for a node, " + config.DefaultManagerListen + " for a manager)"},
					&ucli.BoolFlag{Name: "force", Usage: "replace an existing file"},
				},
				Action: func(c *ucli.Context) error { return e.configInit(c) },
			},
			{
				Name:      "check",
				Usage:     "validate a config; exits non-zero with the reason",
				ArgsUsage: "[PATH]",
				Action: func(c *ucli.Context) error {
					var f *config.File
					var err error
					if p := c.Args().First(); p != "" {
						f, err = config.ReadFile(p)
					} else {
						f, err = e.loadConfig(c)
					}
					if err != nil {
						return err
					}
					if !f.Identity.SecretKey.IsZero() || f.Identity.SecretKeyFile != "" {
						if _, err := f.SecretKey(); err != nil {
							return err
						}
					}
					if err := f.CheckMesh(); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "%s: ok (%d apps)\n", f.Path, len(f.Apps))
					return nil
				},
			},
			{
				Name:  "path",
				Usage: "print which config file would be used",
				Action: func(c *ucli.Context) error {
					p, err := config.Find(flagString(c, "config"))
					if errors.Is(err, config.ErrNotFound) {
						fmt.Fprintln(e.stdout, "(embedded default)")
						return nil
					}
					if err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, p)
					return nil
				},
			},
		},
	}
}

// configInit is `skywire config init`.
func (e *env) configInit(c *ucli.Context) error {
	n := 0
	for _, m := range []string{"node", "manager", "demo"} {
		if c.Bool(m) {
			n++
		}
	}
	if n != 1 {
		return ucli.Exit("say what to write: skywire config init --node (a mesh node), --manager (a mesh's manager) or --demo (the loopback demo mesh) [PATH]", 2)
	}
	if c.NArg() > 1 {
		return ucli.Exit("usage: skywire config init --node|--manager|--demo [PATH]", 2)
	}
	if !c.Bool("node") {
		for _, fl := range []string{"manager-key", "manager-addr", "join", "name"} {
			if c.IsSet(fl) {
				return ucli.Exit("--"+fl+" goes with --node", 2)
			}
		}
	}
	if c.Bool("demo") && c.IsSet("listen") {
		return ucli.Exit("--listen goes with --node or --manager", 2)
	}
	listen := c.String("listen")
	if listen != "" {
		if err := checkHostPort(listen); err != nil {
			return ucli.Exit(fmt.Sprintf("--listen %q: %v", listen, err), 2)
		}
	}
	path := c.Args().First()
	if path == "" {
		path = "skywire.toml"
	}
	var data []byte
	var kp keys.KeyPair
	if !c.Bool("demo") {
		var err error
		if kp, err = keys.Generate(); err != nil {
			return err
		}
	}
	var next string
	switch {
	case c.Bool("demo"):
		data = config.DemoConfig(e.embedded)
		next = "start it: skywire --config " + path + " viscript, then start manager; start node; start node-b; start node-c"
	case c.Bool("manager"):
		data = config.ManagerConfigText(config.ManagerTemplate{Identity: kp, ListenAddr: listen})
		if listen == "" {
			listen = config.DefaultManagerListen
		}
		next = fmt.Sprintf("nodes register with it: skywire config init --node --manager-key %s --manager-addr THIS-HOST:%s", kp.Public, portOf(listen))
	default:
		t := config.NodeTemplate{Identity: kp, ListenAddr: listen, ManagerAddr: c.String("manager-addr"), Join: c.String("join"), Name: c.String("name")}
		if c.IsSet("name") {
			// config check's rule and words (node.name), before writing.
			if err := proto.CheckName(t.Name); err != nil {
				return ucli.Exit(fmt.Sprintf("--name %q: node.name: %v", t.Name, err), 2)
			}
		}
		if s := c.String("manager-key"); s != "" {
			k, err := keys.ParsePublicKey(s)
			if err != nil {
				return ucli.Exit(fmt.Sprintf("--manager-key %q: %v", s, err), 2)
			}
			t.ManagerKey = k
		}
		if t.ManagerAddr != "" {
			if err := checkHostPort(t.ManagerAddr); err != nil {
				return ucli.Exit(fmt.Sprintf("--manager-addr %q: %v", t.ManagerAddr, err), 2)
			}
		}
		data = config.NodeConfig(t)
		if t.ManagerKey.IsZero() || t.ManagerAddr == "" {
			next = "edit [node] managers: it holds a placeholder for the manager's key and address (config check refuses it until then)"
		} else {
			next = "ask the manager's operator to admit this key (members = [...] or a token from skywire manager invite, given here with --join)"
		}
	}
	if err := writeConfig(path, data, c.Bool("force")); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (mode 0600)\n", path)
	if !kp.Public.IsZero() {
		fmt.Fprintf(e.stdout, "public key: %s\n", kp.Public)
	}
	fmt.Fprintf(e.stdout, "next: %s\n", next)
	return nil
}

// checkHostPort checks a HOST:PORT address with a port of 1-65535.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q: want 1-65535", port)
	}
	return nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// writeConfig writes a file holding a secret key: mode 0600, never over an
// existing file unless force, and atomically (temp file + rename).
func writeConfig(path string, data []byte, force bool) error {
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%s exists; use --force to replace it", path)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create config dir: %w", err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".skywire-*.toml")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

func keygenCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:  "keygen",
		Usage: "print a new curve25519 key pair (TOML lines for [identity])",
		Flags: []ucli.Flag{&ucli.StringFlag{Name: "out", Usage: "write the secret key to this file (mode 0600) and print only the public key", TakesFile: true}},
		Action: func(c *ucli.Context) error {
			kp, err := keys.Generate()
			if err != nil {
				return err
			}
			if out := c.String("out"); out != "" {
				if err := keys.WriteSecretKeyFile(out, kp.Secret); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "public_key = %q\nsecret_key_file = %q\n", kp.Public.String(), out)
				return nil
			}
			fmt.Fprintf(e.stdout, "public_key = %q\nsecret_key = %q\n", kp.Public.String(), kp.Secret.Text())
			return nil
		},
	}
}

func versionCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:  "version",
		Usage: "print version, commit and Go version",
		Action: func(c *ucli.Context) error {
			bi := buildinfo.Get()
			fmt.Fprintf(e.stdout, "skywire %s\ncommit %s\n%s %s\n", bi.Version, bi.Commit, bi.GoVersion, bi.Platform)
			return nil
		},
	}
}

func linksCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:      "links",
		Usage:     "create a skywire-ROLE symlink to this binary for every role in DIR",
		ArgsUsage: "DIR",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "short", Usage: "also create plain ROLE links (node, viscript, …); these may shadow other programs"},
			&ucli.BoolFlag{Name: "force", Usage: "replace files that are in the way"},
			&ucli.StringFlag{Name: "target", Usage: "what the links point to (e.g. \"skywire\", relative to DIR, for a package or DESTDIR install); default: this binary's path"},
		},
		Action: func(c *ucli.Context) error {
			dir := c.Args().First()
			if dir == "" || c.NArg() > 1 {
				return ucli.Exit("usage: skywire links DIR", 2)
			}
			self := c.String("target")
			if self == "" {
				var err error
				if self, err = os.Executable(); err != nil {
					return fmt.Errorf("find own binary: %w", err)
				}
				if self, err = filepath.EvalSymlinks(self); err != nil {
					return fmt.Errorf("find own binary: %w", err)
				}
			}
			for _, name := range roleNames() {
				names := []string{"skywire-" + name}
				if c.Bool("short") {
					names = append(names, name)
				}
				for _, n := range names {
					made, err := makeLink(self, filepath.Join(dir, n), c.Bool("force"))
					if err != nil {
						return err
					}
					if made {
						fmt.Fprintf(e.stdout, "%s -> %s\n", filepath.Join(dir, n), self)
					}
				}
			}
			return nil
		},
	}
}

// makeLink makes link point at target. It leaves a correct link alone and
// refuses to replace anything else unless force.
func makeLink(target, link string, force bool) (bool, error) {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return false, nil
	}
	if _, err := os.Lstat(link); err == nil {
		if !force {
			return false, fmt.Errorf("%s exists and is not a link to %s; use --force to replace it", link, target)
		}
		if err := os.Remove(link); err != nil {
			return false, fmt.Errorf("replace %s: %w", link, err)
		}
	}
	if err := os.Symlink(target, link); err != nil {
		return false, fmt.Errorf("create link: %w", err)
	}
	return true, nil
}
