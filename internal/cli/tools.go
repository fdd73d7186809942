package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/skywire-mesh/skywire/internal/cli/buildinfo"
	"github.com/skywire-mesh/skywire/internal/cli/config"
	"github.com/skywire-mesh/skywire/keys"
)

func configCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:  "config",
		Usage: "write, check or locate skywire.toml",
		Subcommands: []*ucli.Command{
			{
				Name:      "init",
				Usage:     "write a commented config with a fresh key pair",
				ArgsUsage: "[PATH]",
				Flags:     []ucli.Flag{&ucli.BoolFlag{Name: "force", Usage: "replace an existing file"}},
				Action: func(c *ucli.Context) error {
					path := c.Args().First()
					if path == "" {
						path = "skywire.toml"
					}
					kp, err := keys.Generate()
					if err != nil {
						return err
					}
					data := config.Template(e.embedded, kp)
					if err := writeConfig(path, data, c.Bool("force")); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "wrote %s (mode 0600)\npublic key: %s\n", path, kp.Public)
					return nil
				},
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
