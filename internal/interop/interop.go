// Package interop runs the reference JS programs in test/interop from Go
// tests, so that every wire format is checked against the real npm packages
// pinned in test/interop/package-lock.json rather than against our reading of
// them.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ProgramTimeout bounds a program run to completion with Run.
const ProgramTimeout = 2 * time.Minute

// Dir returns the absolute path of test/interop, found from the working
// directory upwards (go test runs in the package directory).
func Dir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "test", "interop"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("interop: go.mod not found above " + wd)
		}
	}
}

// Require fails the test unless node and the pinned packages are installed.
// It does not skip: an interop test that silently skips proves nothing.
func Require(t testing.TB) string {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("interop: node not found on PATH; install Node 20")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "hyperdht")); err != nil {
		t.Fatalf("interop: JS packages missing; run `npm ci` in %s", dir)
	}
	return dir
}

// Run runs a program from test/interop to completion with stdin as its input
// and returns its stdout; a non-zero exit fails the test with its stderr.
func Run(t testing.TB, stdin []byte, script string, args ...string) []byte {
	t.Helper()
	dir := Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), ProgramTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("interop: node %s %v: %v\n%s", script, args, err, stderr.String())
	}
	return stdout.Bytes()
}

// Process is a long-running JS program: the test talks to it over its stdin
// and stdout, and it is killed when the test ends.
type Process struct {
	cmd    *exec.Cmd
	Stdin  io.WriteCloser
	Stdout *bufio.Reader
	stderr bytes.Buffer
	done   chan error
}

// Start starts a program from test/interop; it is killed at test cleanup.
func Start(t testing.TB, script string, args ...string) *Process {
	t.Helper()
	return start(t, exec.Command("node", append([]string{script}, args...)...), script)
}

// StartIn starts a program from test/interop inside the network namespace
// netns (ip netns exec, which becomes the program).
func StartIn(t testing.TB, netns, script string, args ...string) *Process {
	t.Helper()
	return start(t, exec.Command("ip", append([]string{"netns", "exec", netns, "node", script}, args...)...), script)
}

func start(t testing.TB, cmd *exec.Cmd, script string) *Process {
	t.Helper()
	dir := Require(t)
	p := &Process{cmd: cmd, done: make(chan error, 1)}
	p.cmd.Dir = dir
	p.cmd.Stderr = &lockedWriter{w: &p.stderr}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// An os.Pipe rather than StdoutPipe: Wait closes a StdoutPipe when the
	// program exits, which would lose output not yet read.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = w
	p.Stdin, p.Stdout = stdin, bufio.NewReader(stdout)
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		stdout.Close()
		t.Fatalf("interop: start node %s: %v", script, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		stdout.Close()
		if t.Failed() && p.stderr.Len() > 0 {
			t.Logf("node %s stderr:\n%s", script, p.Stderr())
		}
	})
	return p
}

// ReadLine reads one line of the program's output, without the newline.
func (p *Process) ReadLine() (string, error) {
	line, err := p.Stdout.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("interop: read from node: %w (stderr: %s)", err, p.Stderr())
	}
	return line[:len(line)-1], nil
}

// ReadLineWithin is ReadLine that gives up after d; the program is killed
// then, so a hung peer fails the test instead of stalling it.
func (p *Process) ReadLineWithin(d time.Duration) (string, error) {
	t := time.AfterFunc(d, func() { p.cmd.Process.Kill() })
	defer t.Stop()
	line, err := p.ReadLine()
	if err != nil {
		return "", fmt.Errorf("%w (no line within %v?)", err, d)
	}
	return line, nil
}

// Wait waits for the program to exit by itself.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			return fmt.Errorf("interop: node exited: %w (stderr: %s)", err, p.Stderr())
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("interop: node still running after %v", timeout)
	}
}

// Stderr returns what the program wrote to stderr so far.
func (p *Process) Stderr() string {
	return p.cmd.Stderr.(*lockedWriter).String()
}

// Pid is the program's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }
