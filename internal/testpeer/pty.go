package testpeer

import (
	"bufio"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var ptyRE = regexp.MustCompile(`PTY is (\S+)`)

// PtyPair starts `socat -d -d pty,raw,echo=0 pty,raw,echo=0` and returns
// the two pty paths socat reports once it transfers data. With links (two
// paths), socat also makes those symbolic links to the ptys.
//
// stop ends socat with SIGTERM (so it removes its links) and waits for it;
// it may be called more than once and is called when the test ends. socat
// missing skips the test, or fails it when CI is set.
func PtyPair(t testing.TB, links ...string) (a, b string, stop func()) {
	t.Helper()
	socat := RequireTool(t, "socat")
	if len(links) != 0 && len(links) != 2 {
		t.Fatalf("PtyPair: want 0 or 2 links, got %d", len(links))
	}
	args := []string{"-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"}
	if len(links) == 2 {
		args[2] += ",link=" + links[0]
		args[3] += ",link=" + links[1]
	}
	cmd := exec.Command(socat, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan []string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		var ptys []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() { // until socat exits
			if m := ptyRE.FindStringSubmatch(sc.Text()); m != nil {
				ptys = append(ptys, m[1])
			}
			if strings.Contains(sc.Text(), "starting data transfer loop") {
				ready <- ptys
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-drained:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-drained
			}
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	select {
	case ptys := <-ready:
		if len(ptys) != 2 {
			t.Fatalf("socat reported ptys %v", ptys)
		}
		return ptys[0], ptys[1], stop
	case <-time.After(5 * time.Second):
		t.Fatal("socat did not report its ptys within 5s")
	}
	return "", "", stop
}
