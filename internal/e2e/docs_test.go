package e2e_test

// The documents' shell examples are run, so that README.md and docs/ cannot
// drift from what the binary does. Each document's ```sh blocks run in
// order, as one bash script (so variables set in one block are seen in the
// next), in a fresh scratch directory with the built `sts` first on PATH and
// no STS_* variable set, exactly as a reader would paste them into a
// terminal. `set -euo pipefail` is on, so a failing command fails the
// document, naming its block.
//
// Conventions the documents follow:
//   - Blocks fenced ```sh are run; ```sh {norun} (the README's own commands
//     that build and test this repository) and any other fence are not.
//   - The addresses 127.0.0.1:8080 (the STS), :8081 and :8082 (the example
//     backend and exchange service) are replaced by free ports, so that
//     documents run in parallel and beside a real server.
//   - The example programs (`go install ./examples/...`) are on PATH too,
//     as resource-server, exchange and sas.
//   - A line that starts a program in the background with an explicit
//     `--addr` (`sts serve --addr ... &`) is followed, in the script, by a
//     wait until that address answers HTTP; background jobs end with the
//     script.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// shellBlock is one ```sh block of a document.
type shellBlock struct {
	line int // of the opening fence, 1-based
	text string
}

// shellBlocks returns the runnable blocks of a Markdown document.
func shellBlocks(doc string) []shellBlock {
	var (
		out   []shellBlock
		cur   *shellBlock
		fence string
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case fence == "" && strings.HasPrefix(trimmed, "```"):
			fence = "```"
			if strings.TrimSpace(strings.TrimPrefix(trimmed, "```")) == "sh" {
				cur = &shellBlock{line: n}
			}
		case fence != "" && trimmed == fence:
			if cur != nil {
				out = append(out, *cur)
			}
			fence, cur = "", nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return out
}

// background matches a line that starts a program listening on --addr in
// the background, capturing the address.
var background = regexp.MustCompile(`^[^#]*--addr[ =](\S+)[^#]*&\s*(#.*)?$`)

// docPorts are the documents' addresses, replaced by free ports.
var docPorts = []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082"}

// docScript turns a document's blocks into one bash script, with the
// documents' addresses replaced by those of ports (one per docPorts).
func docScript(name string, blocks []shellBlock, ports []int) string {
	var b strings.Builder
	b.WriteString("set -euo pipefail\n")
	// Background jobs (the servers) end with the script, gracefully. With
	// none, kill has no operand and fails, which under set -e would fail
	// a document that starts no server.
	b.WriteString("trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n")
	for _, blk := range blocks {
		fmt.Fprintf(&b, "echo '>>> %s:%d' >&2\n", name, blk.line)
		for _, line := range strings.SplitAfter(blk.text, "\n") {
			for i, p := range docPorts {
				line = strings.ReplaceAll(line, p, fmt.Sprintf("127.0.0.1:%d", ports[i]))
			}
			b.WriteString(line)
			if m := background.FindStringSubmatch(strings.TrimSuffix(line, "\n")); m != nil {
				// Any HTTP answer means it listens.
				fmt.Fprintf(&b, "for i in $(seq 1 300); do curl -s -o /dev/null http://%s/ 2>/dev/null && break; sleep 0.1; done\n", m[1])
			}
		}
	}
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// docFiles are the documents whose examples run: the README and docs/.
func docFiles(t *testing.T) (root string, files []string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files = []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range more {
		rel, _ := filepath.Rel(root, f)
		files = append(files, rel)
	}
	return root, files
}

func TestDocs(t *testing.T) {
	bin := buildSTS(t)
	root, files := docFiles(t)
	for _, name := range files {
		doc, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		blocks := shellBlocks(string(doc))
		if len(blocks) == 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runDoc(t, bin, name, blocks)
		})
	}
}

// runDoc runs a document's script in a scratch directory.
func runDoc(t *testing.T, bin, name string, blocks []shellBlock) {
	dir := t.TempDir()
	binDir := filepath.Join(dir, ".bin")
	if err := os.Mkdir(binDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(binDir, "sts")); err != nil {
		t.Fatal(err)
	}
	for _, ex := range exampleBinaries(t) {
		if err := os.Symlink(ex, filepath.Join(binDir, filepath.Base(ex))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", docScript(name, blocks, []int{freePort(t), freePort(t), freePort(t)}))
	cmd.Dir = dir
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STS_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+dir)
	killWithParent(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: the examples failed (%v); the last block started is the last '>>>' line:\n%s", name, err, tail(string(out), 80))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestShellBlocks pins the conventions of the document runner.
func TestShellBlocks(t *testing.T) {
	doc := "intro\n```sh {norun}\ngo test ./...\n```\n```sh\necho one\nsts serve &\n```\n```\nnot run\n```\n  ```sh\n  echo two\n  ```\n```console\n$ not run\n```\n"
	blocks := shellBlocks(doc)
	if len(blocks) != 2 || blocks[0].text != "echo one\nsts serve &\n" || blocks[0].line != 5 || !strings.Contains(blocks[1].text, "echo two") {
		t.Fatalf("blocks = %+v", blocks)
	}
	script := docScript("doc.md", blocks, []int{9999, 9998, 9997})
	if strings.Contains(script, "curl -s -o /dev/null http://127.0.0.1:9999/") || strings.Contains(script, "go test") {
		t.Errorf("script waits for a server started without --addr, or runs a norun block:\n%s", script)
	}
	blocks = shellBlocks("```sh\nsts serve --addr 127.0.0.1:8080 > log &   # comment\nresource-server --addr 127.0.0.1:8081 &\necho 127.0.0.1:8082\n```\n")
	script = docScript("doc.md", blocks, []int{9999, 9998, 9997})
	for _, want := range []string{"curl -s -o /dev/null http://127.0.0.1:9999/", "curl -s -o /dev/null http://127.0.0.1:9998/", "echo 127.0.0.1:9997"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
}

// exampleBinaries builds the example programs once (resource-server,
// exchange and sas) and returns their paths.
func exampleBinaries(t *testing.T) []string {
	t.Helper()
	examples.once.Do(func() {
		dir := filepath.Dir(buildSTS(t))
		for _, name := range []string{"resource-server", "exchange", "sas"} {
			path := filepath.Join(dir, name)
			cmd := exec.Command("go", "build", "-o", path, "./examples/"+name)
			root, _ := filepath.Abs("../..")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				examples.err = fmt.Errorf("go build ./examples/%s: %v\n%s", name, err, out)
				return
			}
			examples.paths = append(examples.paths, path)
		}
	})
	if examples.err != nil {
		t.Fatal(examples.err)
	}
	return examples.paths
}

var examples struct {
	once  sync.Once
	paths []string
	err   error
}
