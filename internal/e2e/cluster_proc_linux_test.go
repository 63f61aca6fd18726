//go:build linux

package e2e_test

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill the process if the test binary dies
// (a panic, a -timeout), so that no `sts serve` outlives the test.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
