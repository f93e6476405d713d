//go:build !unix

package pgcluster

import (
	"errors"
	"os"
	"runtime"
	"syscall"
)

// exeSuffix is the file name suffix of executables.
const exeSuffix = ".exe"

// platformSupported reports whether Start can run here.
func platformSupported() error {
	return errors.New("pgcluster: starting a private PostgreSQL cluster is not supported on " +
		runtime.GOOS + ": set DATABASE_URL to an existing server")
}

func procAttr(*runUser, bool) *syscall.SysProcAttr { return nil }
func interrupt(p *os.Process) error                { return p.Kill() }
func killGroup(int)                                {}
func signalPid(int, bool) error                    { return errors.ErrUnsupported }
func traversable(string, *runUser) (bool, error)   { return true, nil }
func processAlive(int) bool                        { return false }
func isPostmasterOf(int, string) bool              { return false }
