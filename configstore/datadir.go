package configstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.uber.org/zap"
)

var (
	// ErrDataDirInUse means another process, or another StartEmbedded in
	// this one, runs an etcd on the same data directory. A *DataDirError
	// tells which directory and, when known, the other process's pid.
	ErrDataDirInUse = errors.New("configstore: data directory in use")
	// ErrDataDamaged means the embedded etcd's files cannot be trusted:
	// a database or write-ahead log that does not read back whole. A
	// *DataDirError names the file.
	ErrDataDamaged = errors.New("configstore: data damaged")
)

// DataDirError is what StartEmbedded returns when it refuses a data
// directory; errors.Is matches it against ErrDataDirInUse or ErrDataDamaged.
type DataDirError struct {
	Dir  string
	Path string // the damaged file, or the lock file when in use
	PID  int    // the process holding the directory; 0 when unknown
	Kind error  // ErrDataDirInUse or ErrDataDamaged
	Err  error  // the cause
}

func (e *DataDirError) Error() string {
	if errors.Is(e.Kind, ErrDataDirInUse) {
		who := "another process"
		if e.PID > 0 {
			who = fmt.Sprintf("another process (pid %d)", e.PID)
		}
		return fmt.Sprintf("data directory %s is in use by %s; stop it, or give this gateway another data directory", e.Dir, who)
	}
	return fmt.Sprintf("data directory %s is damaged: %s: %v; restore the directory from a backup (or move it aside to start empty, losing its history), then start again", e.Dir, e.Path, e.Err)
}

// Unwrap gives both the kind, for errors.Is(err, ErrDataDamaged), and the
// cause, for errors.Is(err, bolt.ErrInvalid) and the like.
func (e *DataDirError) Unwrap() []error { return []error{e.Kind, e.Err} }

const (
	// lockFileName is the file whose lock says a switchback process owns
	// the data directory; it holds that process's pid.
	lockFileName = "switchback.lock"
	// boltLockTimeout bounds the wait for bolt's own file lock, held by an
	// etcd that did not take ours (an older switchback, a plain etcd).
	boltLockTimeout = time.Second
)

// dataDirLock is held while an embedded etcd runs on the directory.
type dataDirLock struct{ f *fileutil.LockedFile }

// lockDataDir takes the directory's lock at once or says who has it;
// waiting would only hang, since bolt's own lock would block etcd anyway.
func lockDataDir(dir string) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("configstore: embedded etcd: data directory: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := fileutil.TryLockFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fileutil.ErrLocked) {
		return nil, &DataDirError{Dir: dir, Path: path, PID: readPID(path), Kind: ErrDataDirInUse, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("configstore: embedded etcd: lock %s: %w", path, err)
	}
	// The pid is for the message of whoever comes second; failing to
	// write it costs only that detail.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataDirLock{f: f}, nil
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

func (l *dataDirLock) release() {
	// The pid goes first, so a reader never blames a process that left.
	_ = l.f.Truncate(0)
	_ = l.f.Close()
}

// checkDataDir reads the etcd files in dir the way etcd will at start, and
// refuses what etcd would panic on (a database bolt cannot open), hang on
// (a write-ahead log that lost entries the database has applied), or wait
// for forever (a database locked by a process that ignored our lock). It
// changes nothing; a directory without etcd files passes.
func checkDataDir(dir string) error {
	dbPath := filepath.Join(dir, "member", "snap", "db")
	walDir := filepath.Join(dir, "member", "wal")
	applied, dbExists, err := checkDatabase(dir, dbPath)
	if err != nil {
		return err
	}
	if !wal.Exist(walDir) {
		return nil // a new member, or one etcd will rebuild from its database
	}
	logged, err := walLastIndex(walDir)
	if err != nil {
		return &DataDirError{Dir: dir, Path: walDir, Kind: ErrDataDamaged, Err: err}
	}
	if dbExists && applied > logged {
		// Every entry reaches the log before the database applies it, so a
		// log that ends earlier was cut short: etcd would start without
		// the cluster's membership and never become ready.
		return &DataDirError{Dir: dir, Path: walDir, Kind: ErrDataDamaged,
			Err: fmt.Errorf("write-ahead log ends at entry %d but the database has applied up to %d: the log was truncated", logged, applied)}
	}
	return nil
}

// checkDatabase opens the bolt file read-only, checks every page, and
// returns the raft index etcd applied last.
func checkDatabase(dir, path string) (applied uint64, exists bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: boltLockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return 0, true, &DataDirError{Dir: dir, Path: path, Kind: ErrDataDirInUse, Err: err}
	}
	if err != nil {
		return 0, true, &DataDirError{Dir: dir, Path: path, Kind: ErrDataDamaged, Err: err}
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		// Check recovers from the panics a mangled page causes and
		// reports them as errors.
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if b := tx.Bucket([]byte("meta")); b != nil {
			if v := b.Get([]byte("consistent_index")); len(v) == 8 {
				applied = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	if err != nil {
		return 0, true, &DataDirError{Dir: dir, Path: path, Kind: ErrDataDamaged, Err: err}
	}
	return applied, true, nil
}

// walLastIndex reads the log from its newest snapshot record, as etcd
// does, and returns the index of its last entry. A torn last record is
// accepted: etcd repairs that itself.
func walLastIndex(walDir string) (last uint64, err error) {
	// Decoding a mangled record can panic inside wal; this goroutine is
	// ours, so the panic becomes an error here.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable record: %v", r)
		}
	}()
	lg := zap.NewNop()
	snaps, err := wal.ValidSnapshotEntries(lg, walDir)
	if err != nil {
		return 0, err
	}
	start := &walpb.Snapshot{}
	if len(snaps) > 0 {
		start = snaps[len(snaps)-1]
	}
	w, err := wal.OpenForRead(lg, walDir, start)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	_, _, ents, err := w.ReadAll()
	if err != nil {
		return 0, err
	}
	last = start.GetIndex()
	if n := len(ents); n > 0 {
		last = max(last, ents[n-1].GetIndex())
	}
	return last, nil
}
