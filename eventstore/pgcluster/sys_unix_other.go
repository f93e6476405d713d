//go:build unix && !linux

package pgcluster

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// setPdeathsig does nothing: this system has no parent-death signal, so a
// server outliving a SIGKILLed process is stopped by the next Start instead.
func setPdeathsig(*syscall.SysProcAttr) {}

// processAlive reports whether process pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// isPostmasterOf reports whether process pid is a postgres server for dataDir,
// judged from its command line ("postgres -D <dataDir> ...").
func isPostmasterOf(pid int, dataDir string) bool {
	out, err := exec.Command("ps", "-o", "command=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return false
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 || filepath.Base(fields[0]) != "postgres" {
		return false
	}
	want := dataDir
	if r, err := filepath.EvalSymlinks(dataDir); err == nil {
		want = r
	}
	for _, f := range fields[1:] {
		if f == dataDir || f == want {
			return true
		}
	}
	return false
}
