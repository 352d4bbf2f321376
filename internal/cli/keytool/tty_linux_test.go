package keytool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal: what is written to master
// is typed at slave, and master reads what the terminal shows (its echo).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr == nil {
			n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ioErr != nil {
		t.Fatalf("unlock the pseudo-terminal: %v %v", err, ioErr)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// promptWriter is standard error: it closes prompted at the first prompt for a
// component.
type promptWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	prompted chan struct{}
	once     sync.Once
}

func (w *promptWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "component 1 of 1 (") {
		w.once.Do(func() { close(w.prompted) })
	}
	return len(p), nil
}

func (w *promptWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestImportComponentNotEchoed: keys import reads a component typed at a terminal
// with the terminal's echo off, and turns it on again after; the component is
// typed only once the terminal says echo is off (the prompt comes just before),
// and what the terminal showed up to a mark typed after the import is checked for
// it. Before, the component was read with echo on: the terminal showed it.
func TestImportComponentNotEchoed(t *testing.T) {
	f := setup(t)
	master, slave := openPTY(t)
	echoOn := func() bool {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Lflag&unix.ECHO != 0
	}
	if !echoOn() {
		t.Fatal("a new pseudo-terminal has echo off")
	}
	comp := "0123456789ABCDEF0123456789ABCDEF"
	errw := &promptWriter{prompted: make(chan struct{})}
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- RunWithInput(context.Background(), []string{"import", "--type", "ZMK", "--id", "tty.ZMK", "--enter", "1"}, f.c, f.loc, slave, &out, errw)
	}()
	<-errw.prompted
	// The prompt is written just before the terminal's echo is turned off: wait for
	// that state (a condition, not a guess at a time), within a bound.
	deadline := time.Now().Add(5 * time.Second)
	for echoOn() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if echoOn() {
		t.Error("the terminal's echo is still on while keys import waits for a component")
	}
	if _, err := master.WriteString(withKCV(comp) + "\n"); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != ExitOK {
		t.Fatalf("import: exit %d, stdout %q, stderr %q", code, out.String(), errw.String())
	}
	if !echoOn() {
		t.Error("keys import left the terminal's echo off")
	}
	if !strings.Contains(out.String(), "1 of 2 components of tty.ZMK entered") || !strings.Contains(errw.String(), "not shown as typed") {
		t.Errorf("stdout %q, stderr %q", out.String(), errw.String())
	}
	// Nobody reads the terminal now, and its echo is on: the mark comes back after
	// whatever it showed before.
	if _, err := master.WriteString("MARK\n"); err != nil {
		t.Fatal(err)
	}
	if err := master.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var shown []byte
	buf := make([]byte, 256)
	for !bytes.Contains(shown, []byte("MARK")) {
		n, err := master.Read(buf)
		shown = append(shown, buf[:n]...)
		if err != nil {
			t.Fatalf("read what the terminal showed (%q): %v", shown, err)
		}
	}
	if bytes.Contains(shown, []byte(comp[:8])) {
		t.Errorf("the terminal showed the component as it was typed: %q", shown)
	}
}
