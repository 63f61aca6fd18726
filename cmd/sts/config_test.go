package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployExampleConfig: deploy/sts.yaml, the example configuration
// file, passes `sts config check` (CI runs this test; .ci/run also runs
// the command on the built binary).
func TestDeployExampleConfig(t *testing.T) {
	c := newCLI(t, "")
	out, _, err := c.run("config", "check", "--config", filepath.Join("..", "..", "deploy", "sts.yaml"))
	if err != nil || !strings.Contains(out, "OK") || !strings.Contains(out, "1 trusted issuer") {
		t.Fatalf("sts config check deploy/sts.yaml: %v\n%s", err, out)
	}
}

// TestConfigCheckListsEveryProblem: a file with a problem of each kind
// gets every one reported, each with its key, and a non-zero exit; an
// unknown key (top level or in an issuer's entry) comes with the nearest
// known one; nothing is created (the database is never opened).
func TestConfigCheckListsEveryProblem(t *testing.T) {
	c := newCLI(t, "")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "sts.yaml")
	yaml := `addr: localhost
data-dir: ` + data + `
log-levle: debug
acess-token-ttl: 1h
refresh-token-ttl: 1 day
audit-journal: sometimes
tls-cert: ` + filepath.Join(dir, "missing.crt") + `
tls-key: ` + filepath.Join(dir, "missing.key") + `
client-ca: ` + notPEM + `
trusted-proxies: 10.0.0.0/40
issuers:
  - name: ci
    issuer: https://ci.example.com
    clients: ["*"]
    audences: [sts]
    condition: 'subject.repository =='
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := c.run("config", "check", "--config", file)
	if err == nil {
		t.Fatalf("a bad file passed:\n%s", out)
	}
	for _, want := range []string{
		`unknown setting "log-levle" (did you mean "log-level"?)`,
		`unknown setting "acess-token-ttl" (did you mean "access-token-ttl"?)`,
		`field audences not found in type config.IssuerEntry (did you mean "audiences"?)`,
		`refresh-token-ttl: "1 day" is not a duration`,
		`audit-journal: "sometimes" is not auto, on or off`,
		`addr: "localhost" is not host:port`,
		`10.0.0.0/40`,
		`issuer "ci": condition`,
		`tls-cert/tls-key: open ` + filepath.Join(dir, "missing.crt"),
		`client-ca:`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n  - "); n < 10 {
		t.Errorf("%d problems listed, want at least 10:\n%s", n, out)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("config check created the data directory (%v): it must not open the database", err)
	}
}

// TestConfigCheckFlagsAndStorage: the flags of `sts serve` are checked
// too; PostgreSQL needs the key-encryption key; a bad one is refused
// without being echoed; a database URL is never connected to (a port
// where nothing listens passes).
func TestConfigCheckFlagsAndStorage(t *testing.T) {
	c := newCLI(t, "")
	if out, _, err := c.run("config", "check", "--addr", "127.0.0.1:http", "--issuer", "https://sts.example.com/?x=1"); err == nil ||
		!strings.Contains(out, `addr: port "http" is not a number`) || !strings.Contains(out, "issuer:") {
		t.Errorf("bad flags: %v\n%s", err, out)
	}
	if out, _, err := c.run("config", "check", "--addr", "0.0.0.0:84430"); err == nil || !strings.Contains(out, "addr: port 84430 is not from 0 to 65535") {
		t.Errorf("a port out of range: %v\n%s", err, out)
	}
	// A flag's own type (a duration) is checked as the flag is parsed.
	if _, _, err := c.run("config", "check", "--key-rotation-period", "monthly"); err == nil || !strings.Contains(err.Error(), "key-rotation-period") {
		t.Errorf("a bad duration flag: %v", err)
	}
	pg := "postgres://sts:secret-password@127.0.0.1:1/sts"
	if out, _, err := c.run("config", "check", "--database-url", pg); err == nil || !strings.Contains(out, "STS_KEY_ENCRYPTION_KEY") ||
		strings.Contains(out, "secret-password") {
		t.Errorf("PostgreSQL without a KEK: %v\n%s", err, out)
	}
	t.Setenv("STS_KEY_ENCRYPTION_KEY", testKEK)
	if out, _, err := c.run("config", "check", "--database-url", pg); err != nil || !strings.Contains(out, "OK") {
		t.Errorf("PostgreSQL with a KEK (never connected to): %v\n%s", err, out)
	}
	t.Setenv("STS_KEY_ENCRYPTION_KEY", "c2hvcnQta2V5")
	if out, _, err := c.run("config", "check"); err == nil || !strings.Contains(out, "STS_KEY_ENCRYPTION_KEY: key-encryption key must be 32 bytes") ||
		strings.Contains(out, "c2hvcnQta2V5") {
		t.Errorf("a short KEK: %v\n%s", err, out)
	}
	if out, _, err := c.run("config", "check", "--database-url", "mysql://db/sts"); err == nil || !strings.Contains(out, `unsupported scheme "mysql"`) {
		t.Errorf("a MySQL URL: %v\n%s", err, out)
	}
}

// TestSystemdUnitVerifies: deploy/sts.service passes `systemd-analyze
// verify` (with /bin/true standing for the binary, which verify requires
// to exist), where systemd-analyze is installed.
func TestSystemdUnitVerifies(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "sts.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/sts", "/bin/true")
	for _, want := range []string{"\nDynamicUser=yes\n", "\nStateDirectory=sts\n", "\nProtectSystem=strict\n", "\nNoNewPrivileges=yes\n",
		"\nCapabilityBoundingSet=\n", "\nSystemCallFilter=@system-service\n", "\nExecStartPre=/bin/true config check --config /etc/sts/sts.yaml\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	path := filepath.Join(t.TempDir(), "sts.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "verify", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
