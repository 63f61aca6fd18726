package config

import (
	"strings"
	"testing"
)

// --admin-addr is off by default, a host:port when set, and never the
// public address.
func TestAdminAddr(t *testing.T) {
	c, err := load(t)
	if err != nil || c.AdminAddr != "" {
		t.Fatalf("default: %q, %v", c.AdminAddr, err)
	}
	if c, err = load(t, "--admin-addr", "127.0.0.1:9090"); err != nil || c.AdminAddr != "127.0.0.1:9090" {
		t.Fatalf("set: %q, %v", c.AdminAddr, err)
	}
	// Two ephemeral ports are two listeners.
	if _, err = load(t, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"); err != nil {
		t.Fatalf("both on port 0: %v", err)
	}
	for _, bad := range [][]string{
		{"--admin-addr", "9090"},
		{"--admin-addr", "127.0.0.1:http"},
		{"--admin-addr", "127.0.0.1:70000"},
		{"--addr", "127.0.0.1:8080", "--admin-addr", "127.0.0.1:8080"},
	} {
		if _, err := load(t, bad...); err == nil || !strings.Contains(err.Error(), FlagAdminAddr) {
			t.Errorf("%v: error %v, want one naming %s", bad, err, FlagAdminAddr)
		}
	}
}
