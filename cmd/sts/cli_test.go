package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/setup"
)

// testKEK is a fixed key-encryption key (32 bytes, base64) for tests that
// do not exercise the generated one.
const testKEK = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// cli runs the sts command tree in-process against one data directory.
type cli struct {
	t   *testing.T
	dir string
}

// newCLI returns a CLI over a fresh data directory, with every STS_*
// variable that could redirect it cleared. kek is the value of
// STS_KEY_ENCRYPTION_KEY; "" lets the data directory generate one.
func newCLI(t *testing.T, kek string) *cli {
	t.Helper()
	for _, name := range []string{"STS_CONFIG", "STS_DATA_DIR", "STS_DATABASE_URL", "STS_LOG_LEVEL", "STS_LOG_FORMAT",
		"STS_KEY_ALGORITHM", "STS_ADDR", "STS_ISSUER", "STS_CLIENT_ID", "STS_CLIENT_SECRET", "STS_TOKEN_ENDPOINT", "STS_SERVER"} {
		t.Setenv(name, "")
	}
	t.Setenv("STS_KEY_ENCRYPTION_KEY", kek)
	return &cli{t: t, dir: t.TempDir()}
}

// run executes `sts --data-dir DIR args...` with stdin, returning what it
// wrote and its error.
func (c *cli) runIn(stdin string, args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--data-dir", c.dir, "--log-level", "warn"}, args...))
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func (c *cli) run(args ...string) (string, string, error) {
	c.t.Helper()
	return c.runIn("", args...)
}

// ok runs args and fails the test on error.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, stderr, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("sts %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// fail runs args, requires an error of one line containing want, and
// returns it.
func (c *cli) fail(want string, args ...string) string {
	c.t.Helper()
	_, _, err := c.run(args...)
	if err == nil {
		c.t.Fatalf("sts %s: succeeded, want error containing %q", strings.Join(args, " "), want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		c.t.Errorf("sts %s: error spans several lines: %q", strings.Join(args, " "), msg)
	}
	if !strings.Contains(msg, want) {
		c.t.Errorf("sts %s: error %q, want it to contain %q", strings.Join(args, " "), msg, want)
	}
	return msg
}

// okJSON runs args and decodes their JSON output into v.
func (c *cli) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("sts %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// env opens the same data the CLI uses, as a server in the same data
// directory would.
func (c *cli) env() *setup.Env {
	c.t.Helper()
	cfg := &config.Config{DataDir: c.dir, LogLevel: "error", LogFormat: "text", KeyEncryptionKey: envKEK(c.t)}
	env, err := setup.Open(context.Background(), cfg, io.Discard)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { env.Close() })
	return env
}

func envKEK(t *testing.T) string {
	t.Helper()
	// newCLI set it with t.Setenv; read it back the way config.Load does.
	return os.Getenv("STS_KEY_ENCRYPTION_KEY")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// equalJSON reports whether a and b encode to the same JSON.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	return bytes.Equal(mustJSON(t, a), mustJSON(t, b))
}
