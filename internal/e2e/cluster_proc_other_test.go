//go:build !linux

package e2e_test

import "os/exec"

// killWithParent is Linux-only; elsewhere the cleanup alone stops the
// processes.
func killWithParent(*exec.Cmd) {}
