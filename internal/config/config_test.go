package config

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	RegisterStorage(fs)
	RegisterServe(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Load(fs, func(string) string { return "" })
}

// The bounded-storage settings: production defaults, and their checks.
func TestBoundedStorageSettings(t *testing.T) {
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.AuditRetention != 90*24*time.Hour || c.AuthFailuresPerAddress != 30 || c.AuthFailuresPerClient != 30 {
		t.Errorf("defaults: retention %v, failures per address %d, per client %d", c.AuditRetention, c.AuthFailuresPerAddress, c.AuthFailuresPerClient)
	}
	c, err = load(t, "--audit-retention", "0", "--auth-failure-rate-per-address", "5", "--auth-failure-rate-per-client", "7")
	if err != nil || c.AuditRetention != 0 || c.AuthFailuresPerAddress != 5 || c.AuthFailuresPerClient != 7 {
		t.Errorf("set: %+v, %v", c, err)
	}
	_, err = load(t, "--audit-retention", "-1h", "--auth-failure-rate-per-address", "0", "--auth-failure-rate-per-client", "-2")
	for _, want := range []string{FlagAuditRetention, FlagAuthFailAddress, FlagAuthFailClient} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("invalid settings: error %v does not name %s", err, want)
		}
	}
}
