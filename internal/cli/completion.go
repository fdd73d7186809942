package cli

import (
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// completionCommand prints a shell completion script. bash and zsh ask
// the binary itself for the words at the cursor (urfave/cli's
// --generate-bash-completion, so nested subcommands and flags are always
// those of the installed binary) and fall back to the list of commands
// built into the script; fish gets urfave/cli's static script.
func completionCommand(e *env) *ucli.Command {
	return &ucli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: `Install it for your shell:
  bash:  skywire completion bash > ~/.local/share/bash-completion/completions/skywire
         (or /etc/bash_completion.d/skywire; or add 'source <(skywire completion bash)' to ~/.bashrc)
  zsh:   skywire completion zsh > "${fpath[1]}/_skywire"   (then: autoload -U compinit; compinit)
  fish:  skywire completion fish > ~/.config/fish/completions/skywire.fish
The scripts also complete the role links (skywire-viscript, …).`,
		Action: func(c *ucli.Context) error {
			if err := needArgs(c, 1); err != nil {
				return err
			}
			var script string
			switch sh := c.Args().First(); sh {
			case "bash":
				script = bashCompletion(e)
			case "zsh":
				script = zshCompletion(e)
			case "fish":
				var err error
				if script, err = e.app().ToFishCompletion(); err != nil {
					return fmt.Errorf("fish completion: %w", err)
				}
			default:
				return ucli.Exit(fmt.Sprintf("unknown shell %q: want bash, zsh or fish", sh), 2)
			}
			_, err := fmt.Fprint(e.stdout, script)
			return err
		},
	}
}

// completionNames are the program names the scripts complete: skywire and
// every skywire-ROLE link.
func completionNames() string {
	names := []string{"skywire"}
	for _, r := range roleNames() {
		names = append(names, "skywire-"+r)
	}
	return strings.Join(names, " ")
}

func commandWords(e *env) string {
	return strings.Join(append(roleNames(), toolNames(e)...), " ")
}

func bashCompletion(e *env) string {
	return `# bash completion for skywire (skywire completion bash)
_skywire_commands='` + commandWords(e) + `'

_skywire() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  if [[ -z "$opts" && $COMP_CWORD -eq 1 && "${words[0]##*/}" == skywire ]]; then
    opts=$_skywire_commands
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}

complete -o bashdefault -o default -F _skywire ` + completionNames() + "\n"
}

func zshCompletion(e *env) string {
	return `#compdef ` + completionNames() + `
# zsh completion for skywire (skywire completion zsh)
_skywire_commands=(` + commandWords(e) + `)

_skywire() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" == "" && $CURRENT -eq 2 && "${words[1]:t}" == skywire ]]; then
    opts=($_skywire_commands)
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}

if [[ "$funcstack[1]" == _skywire ]]; then
  _skywire "$@"
else
  compdef _skywire ` + completionNames() + `
fi
`
}
