//go:build linux

package pgcluster

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// setPdeathsig makes the kernel send the server SIGINT (fast shutdown) when we
// die, so that it does not outlive us if we are SIGKILLed.
//
// Caveat: Linux delivers the parent-death signal when the *thread* that started
// the child exits, not the process. Go threads normally live as long as the
// process, but one that ends while locked by runtime.LockOSThread is destroyed,
// which would shut the server down early. Setpgid also means a terminal Ctrl-C
// does not reach the server, so it relies on us (Stop) or on this signal. A server
// that survives anyway (e.g. on systems without this mechanism) is stopped by the
// next Start on the same data directory, via postmaster.pid.
func setPdeathsig(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGINT }

// processAlive reports whether process pid exists and is not a zombie.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// Format: "pid (comm) S ...", and comm may itself contain ") ".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

// isPostmasterOf reports whether process pid is a postgres server for dataDir:
// the postmaster changes its working directory to its data directory, and its
// command line is "postgres -D <dataDir> ...".
func isPostmasterOf(pid int, dataDir string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	want := dataDir
	if r, err := filepath.EvalSymlinks(dataDir); err == nil {
		want = r
	}
	if cwd, err := os.Readlink(proc + "/cwd"); err == nil {
		return cwd == want || cwd == dataDir
	}
	// No permission to read cwd: fall back to the command line.
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if len(args) == 0 || filepath.Base(string(args[0])) != "postgres" {
		return false
	}
	for _, a := range args[1:] {
		if s := string(a); s == dataDir || s == want {
			return true
		}
	}
	return false
}
