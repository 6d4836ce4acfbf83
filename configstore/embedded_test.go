package configstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// filledDataDir returns the data directory of an etcd that wrote n keys and
// stopped.
func filledDataDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	e, c := startEtcd(t, dir, "127.0.0.1:0")
	for i := range n {
		if _, err := c.Put(t.Context(), fmt.Sprintf("/k/%d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// walFile returns the data directory's only WAL file and how many of its
// bytes hold records (the rest is preallocated zeros).
func walFile(t *testing.T, dir string) (string, int64) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
	if err != nil || len(files) != 1 {
		t.Fatalf("WAL files in %s: %v, %v; want one", dir, files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	used := int64(len(bytes.TrimRight(b, "\x00")))
	return files[0], used
}

func TestStartEmbeddedRefusesDamagedData(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string) string // returns the file it damaged
	}{
		{"WAL cut after its header", func(t *testing.T, dir string) string {
			wal, _ := walFile(t, dir)
			truncate(t, wal, 100)
			return filepath.Dir(wal)
		}},
		{"WAL cut halfway through its entries", func(t *testing.T, dir string) string {
			wal, used := walFile(t, dir)
			truncate(t, wal, used/2)
			return filepath.Dir(wal)
		}},
		{"WAL emptied", func(t *testing.T, dir string) string {
			wal, _ := walFile(t, dir)
			truncate(t, wal, 0)
			return filepath.Dir(wal)
		}},
		{"database meta pages zeroed", func(t *testing.T, dir string) string {
			db := filepath.Join(dir, "member", "snap", "db")
			f, err := os.OpenFile(db, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 2*os.Getpagesize()), 0); err != nil {
				t.Fatal(err)
			}
			return db
		}},
		{"database cut short", func(t *testing.T, dir string) string {
			db := filepath.Join(dir, "member", "snap", "db")
			truncate(t, db, 100)
			return db
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filledDataDir(t, 200)
			damaged := tt.damage(t, dir)

			e, err := StartEmbedded(dir, "127.0.0.1:0")
			if err == nil {
				e.Close()
				t.Fatal("StartEmbedded on damaged data succeeded; want ErrDataDamaged")
			}
			if !errors.Is(err, ErrDataDamaged) {
				t.Fatalf("StartEmbedded = %v; want ErrDataDamaged", err)
			}
			var de *DataDirError
			if !errors.As(err, &de) || de.Dir != dir || de.Path != damaged {
				t.Fatalf("StartEmbedded = %#v; want a *DataDirError for dir %s, file %s", err, dir, damaged)
			}
			for _, want := range []string{dir, damaged, "restore"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not mention %q", err, want)
				}
			}
			// Refusing released the directory: the next attempt says
			// damaged again, not in use.
			if _, err := StartEmbedded(dir, "127.0.0.1:0"); !errors.Is(err, ErrDataDamaged) {
				t.Errorf("second StartEmbedded = %v; want ErrDataDamaged again", err)
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func TestStartEmbeddedKeepsHealthyData(t *testing.T) {
	dir := filledDataDir(t, 50)
	_, c := startEtcd(t, dir, "127.0.0.1:0")
	resp, err := c.Get(t.Context(), "/k/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Count, int64(50); got != want {
		t.Errorf("keys after restart = %d; want %d", got, want)
	}
}

func TestStartEmbeddedDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	startEtcd(t, dir, "127.0.0.1:0")

	e, err := StartEmbedded(dir, "127.0.0.1:0")
	if err == nil {
		e.Close()
		t.Fatal("second StartEmbedded on the same data dir succeeded; want ErrDataDirInUse")
	}
	var de *DataDirError
	if !errors.Is(err, ErrDataDirInUse) || !errors.As(err, &de) {
		t.Fatalf("second StartEmbedded = %v; want a *DataDirError matching ErrDataDirInUse", err)
	}
	if de.Dir != dir || de.PID != os.Getpid() {
		t.Errorf("DataDirError dir %s pid %d; want %s, pid %d", de.Dir, de.PID, dir, os.Getpid())
	}
	want := fmt.Sprintf("data directory %s is in use by another process (pid %d)", dir, os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message %q; want it to contain %q", err, want)
	}
}

// An etcd that does not take switchback's lock (an older switchback, a
// plain etcd) still holds bolt's; that is found within a second too.
func TestStartEmbeddedDatabaseLockedWithoutLockFile(t *testing.T) {
	dir := filledDataDir(t, 1)
	db, err := bolt.Open(filepath.Join(dir, "member", "snap", "db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	e, err := StartEmbedded(dir, "127.0.0.1:0")
	if err == nil {
		e.Close()
		t.Fatal("StartEmbedded on a database locked by another holder succeeded")
	}
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("StartEmbedded = %v; want ErrDataDirInUse", err)
	}
	if want := "in use by another process;"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q; want %q (pid unknown)", err, want)
	}
}

// holdEnv makes the test binary a process that holds a data directory: it
// starts an embedded etcd there, prints "ready" and stops when stdin closes.
const holdEnv = "SWITCHBACK_TEST_HOLD_DATA_DIR"

func TestHoldDataDir(t *testing.T) {
	dir := os.Getenv(holdEnv)
	if dir == "" {
		t.Skip("helper process for TestStartEmbeddedDataDirInUseByAnotherProcess")
	}
	e, err := StartEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func TestStartEmbeddedDataDirInUseByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldDataDir$", "-test.count=1")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("holder process: %v", err)
		}
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("holder process said %q, %v; want ready", line, err)
	}

	e, err := StartEmbedded(dir, "127.0.0.1:0")
	if err == nil {
		e.Close()
		t.Fatal("StartEmbedded on a directory another process holds succeeded")
	}
	var de *DataDirError
	if !errors.As(err, &de) || !errors.Is(err, ErrDataDirInUse) || de.PID != cmd.Process.Pid {
		t.Fatalf("StartEmbedded = %v; want ErrDataDirInUse naming pid %d", err, cmd.Process.Pid)
	}
}

func TestCloseReleasesDataDir(t *testing.T) {
	dir := t.TempDir()
	e, err := StartEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	startEtcd(t, dir, "127.0.0.1:0") // fails if the lock were still held
}
