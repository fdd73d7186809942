package viscript

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// EnvConfig is the variable through which an app launched by viscript
// learns the config file viscript runs with (the command layer's
// $SKYWIRE_CONFIG).
const EnvConfig = "SKYWIRE_CONFIG"

// ShimCommand is the argument list prefix of the re-exec shim:
// `skywire viscript exec-shim [--nofile=N] [--as=BYTES] -- PROGRAM ARGS...`.
// The command layer routes it to RunShim.
var ShimCommand = []string{"viscript", "exec-shim"}

// ErrShimUsage: RunShim got arguments ShimArgs does not make.
var ErrShimUsage = errors.New("viscript exec-shim: bad arguments")

// ShimArgs returns the arguments for SelfPath that apply limits and then
// exec program with args.
func ShimArgs(l Limits, program string, args []string) ([]string, error) {
	mem, err := l.MemoryBytes()
	if err != nil {
		return nil, err
	}
	out := append([]string{}, ShimCommand...)
	if l.NoFile != 0 {
		out = append(out, "--nofile="+strconv.FormatUint(l.NoFile, 10))
	}
	if mem != 0 {
		out = append(out, "--as="+strconv.FormatUint(mem, 10))
	}
	out = append(out, "--", program)
	return append(out, args...), nil
}

// RunShim is the shim's body (args are what follows ShimCommand): it sets
// the limits on itself and replaces itself with the program. It returns
// only on failure; the caller prints the error (to the app's log) and
// exits non-zero.
func RunShim(args []string) error {
	var nofile, as uint64
	i := 0
	for ; i < len(args) && args[i] != "--"; i++ {
		var err error
		switch a := args[i]; {
		case len(a) > 9 && a[:9] == "--nofile=":
			nofile, err = strconv.ParseUint(a[9:], 10, 64)
		case len(a) > 5 && a[:5] == "--as=":
			as, err = strconv.ParseUint(a[5:], 10, 64)
		default:
			return fmt.Errorf("%w: %q", ErrShimUsage, a)
		}
		if err != nil {
			return fmt.Errorf("%w: %q: %w", ErrShimUsage, args[i], err)
		}
	}
	if i+1 >= len(args) {
		return fmt.Errorf("%w: no program after --", ErrShimUsage)
	}
	prog, argv := args[i+1], args[i+1:]
	if err := setLimits(nofile, as); err != nil {
		return err
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return fmt.Errorf("viscript exec-shim: %w", err)
	}
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("viscript exec-shim: exec %s: %w", path, err)
	}
	return nil
}

// credential returns who to run as for the catalog's user key: nil for
// "" (as viscript itself) or for viscript's own user. Switching to another
// user needs root.
func credential(name string) (*syscall.Credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if _, nerr := strconv.Atoi(name); nerr == nil && errors.As(err, &unknown) {
			u, err = user.LookupId(name)
		}
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", name, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	euid := os.Geteuid()
	if uint64(euid) == uid {
		return nil, nil // already that user
	}
	if euid != 0 {
		return nil, fmt.Errorf("running as user %q needs viscript to run as root (it runs as uid %d)", name, euid)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	} else {
		cred.Groups = []uint32{uint32(gid)}
	}
	return cred, nil
}
