package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/configs"
)

// Capture files are DataDir/capture/capture-YYYY-MM-DD-NNNN.jsonl: one
// JSON record per line, named by the UTC day they were written and a
// sequence number within the day, so that names sort oldest first.
const (
	captureSubdir = "capture"
	filePrefix    = "capture-"
	fileSuffix    = ".jsonl"
	dayLayout     = "2006-01-02"
	fileBufSize   = 256 << 10
)

// fileSink appends JSONL lines to the current capture file, rotating by
// size and day and deleting files past retention. It is used by the writer
// goroutine only.
//
// Lines collect in buf and reach the file in one write per flush (every
// flush interval, or sooner when buf passes fileBufSize). When the disk
// refuses a write (full, read-only, an I/O error), the lines stay in buf
// (the spill, bounded by maxSpill) and the same file is retried with
// backoff: no new file is opened per failure, and a partial write is cut
// back to the last whole line so that no torn line is left behind.
type fileSink struct {
	dir       string
	maxBytes  int64
	maxTotal  int64 // capture.max_total_bytes; <= 0: no cap (sink_prune.go)
	retention int
	now       func() time.Time
	fsync     string
	maxSpill  int64
	reserve   int64 // bytes to leave free on the file system; <0: no check
	led       *ledger
	m         *Metrics

	f      captureFile
	open   func(path string) (captureFile, error) // os.OpenFile for appending; tests inject failures
	size   int64
	day    string
	seq    int
	pruned time.Time

	buf     []byte // whole lines not yet in the file
	bufRecs int    // records in buf
	bufDay  string // the day of buf's first line: the file it goes to
	torn    bool   // the file ends in a torn line that could not be cut

	failing bool
	lastErr error
	backoff time.Duration
	retryAt time.Time

	// today's name and bounds, so that write formats the day once a day.
	todayName          string
	todayStart, dayEnd time.Time
}

// captureFile is what the sink needs of an open capture file; *os.File
// provides it.
type captureFile interface {
	io.Writer
	io.ReaderAt
	Truncate(size int64) error
	Sync() error
	Close() error
	Stat() (os.FileInfo, error)
}

func openAppend(path string) (captureFile, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
}

// errReserve is the error of a flush refused to keep the reserve free.
var errReserve = errors.New("free disk space is below capture.reserve_bytes (kept for incidents and the audit log)")

// today returns the current UTC day as YYYY-MM-DD.
func (s *fileSink) today() string {
	t := s.now()
	if t.Before(s.todayStart) || !t.Before(s.dayEnd) {
		u := t.UTC()
		s.todayName = u.Format(dayLayout)
		s.todayStart = time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
		s.dayEnd = s.todayStart.AddDate(0, 0, 1)
	}
	return s.todayName
}

func newFileSink(dataDir string, c configs.Capture, now func() time.Time, led *ledger, m *Metrics) (*fileSink, error) {
	dir := filepath.Join(dataDir, captureSubdir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create capture dir: %w", err)
	}
	s := &fileSink{dir: dir, maxBytes: c.MaxFileBytes, maxTotal: c.MaxTotalBytes, retention: c.RetentionDays, now: now,
		fsync: c.Fsync, maxSpill: c.SpillBytes, reserve: c.ReserveBytes, led: led, m: m, open: openAppend}
	if s.maxBytes < 1<<10 {
		s.maxBytes = 64 << 20
	}
	if s.retention < 1 {
		s.retention = 7
	}
	if s.maxSpill <= 0 {
		s.maxSpill = 64 << 20
	}
	return s, nil
}

func fileName(day string, seq int) string {
	return fmt.Sprintf("%s%s-%04d%s", filePrefix, day, seq, fileSuffix)
}

// parseFileName returns the day and sequence of a capture file name.
func parseFileName(name string) (day string, seq int, ok bool) {
	if !strings.HasPrefix(name, filePrefix) || !strings.HasSuffix(name, fileSuffix) {
		return "", 0, false
	}
	core := strings.TrimSuffix(strings.TrimPrefix(name, filePrefix), fileSuffix)
	if len(core) < len(dayLayout)+2 || core[len(dayLayout)] != '-' {
		return "", 0, false
	}
	day = core[:len(dayLayout)]
	if _, err := time.Parse(dayLayout, day); err != nil {
		return "", 0, false
	}
	seq, err := strconv.Atoi(core[len(dayLayout)+1:])
	if err != nil || seq < 0 {
		return "", 0, false
	}
	return day, seq, true
}

// listFiles returns the capture files in dir, oldest first.
func listFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type f struct {
		day  string
		seq  int
		name string
	}
	var fs []f
	for _, e := range ents {
		if day, seq, ok := parseFileName(e.Name()); ok && e.Type().IsRegular() {
			fs = append(fs, f{day, seq, e.Name()})
		}
	}
	slices.SortFunc(fs, func(a, b f) int {
		if c := strings.Compare(a.day, b.day); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	names := make([]string, len(fs))
	for i, x := range fs {
		names[i] = filepath.Join(dir, x.name)
	}
	return names, nil
}

// add appends one line (which must end in '\n') to the buffer and
// counts it pending. It returns false, having counted nothing, when the
// disk is refusing writes and the spill is full: the caller counts the
// loss. A line is always taken into an empty buffer.
func (s *fileSink) add(line []byte) bool {
	if len(s.buf) > 0 && int64(len(s.buf)+len(line)) > s.maxSpill {
		return false
	}
	if len(s.buf) == 0 {
		s.bufDay = s.today()
	}
	s.buf = append(s.buf, line...)
	s.bufRecs++
	return true
}

// dayTurned reports whether the buffered lines belong to an earlier day
// than a line added now: they are flushed first, to their day's file.
func (s *fileSink) dayTurned() bool { return len(s.buf) > 0 && s.today() != s.bufDay }

// full reports whether the buffer should be flushed before the next tick.
func (s *fileSink) full() bool { return !s.failing && len(s.buf) >= fileBufSize }

// flush writes the buffered lines to the file (not to disk, unless the
// fsync policy is "flush"), rotating as needed. While the sink is failing
// it does nothing until the backoff has passed, unless force is set. The
// lines a failed write did not take stay buffered for the next try.
func (s *fileSink) flush(force bool) error {
	if len(s.buf) == 0 {
		if s.failing { // only a failed sync left it failing: nothing is held
			s.failing, s.backoff, s.lastErr = false, 0, nil
			s.m.sinkFailing[sinkFile].Store(false)
		}
		return nil
	}
	now := s.now()
	if s.failing && !force && now.Before(s.retryAt) {
		return nil
	}
	err := s.writeOut()
	if err == nil {
		if s.failing {
			s.failing, s.backoff, s.lastErr = false, 0, nil
			s.m.sinkFailing[sinkFile].Store(false)
		}
		return nil
	}
	s.backoff = min(max(2*s.backoff, 100*time.Millisecond), 5*time.Second)
	s.retryAt = now.Add(s.backoff)
	s.failing, s.lastErr = true, err
	s.m.sinkFailing[sinkFile].Store(true)
	return err
}

// writeOut writes buf to the files in whole lines, rotating by size and
// day, and settles each line written.
func (s *fileSink) writeOut() error {
	// budget is what may be written without eating into the reserve.
	budget := int64(-1)
	if s.reserve >= 0 {
		if free, ok := freeBytes(s.dir); ok {
			budget = int64(free) - s.reserve
		}
	}
	var syncErr error
	for len(s.buf) > 0 {
		first := bytes.IndexByte(s.buf, '\n') + 1
		if budget >= 0 && budget < int64(first) {
			return fmt.Errorf("write capture file: %w", errReserve)
		}
		day := s.bufDay
		if s.f == nil || day != s.day || (s.size > 0 && s.size+int64(first) > s.maxBytes) {
			if err := s.rotate(day); err != nil {
				return err
			}
		}
		// The longest run of whole lines that fits the file (at least one).
		chunk := s.buf
		if room := s.maxBytes - s.size; int64(len(chunk)) > room {
			cut := bytes.LastIndexByte(chunk[:max(room, int64(first))], '\n') + 1
			chunk = chunk[:max(cut, first)]
		}
		if budget >= 0 && int64(len(chunk)) > budget {
			chunk = chunk[:max(bytes.LastIndexByte(chunk[:budget], '\n')+1, first)]
		}
		if s.torn {
			// Seal a torn line left by an earlier failure before ours.
			if _, err := s.f.Write([]byte("\n")); err != nil {
				return fmt.Errorf("write capture file: %w", err)
			}
			s.size++
			s.torn = false
		}
		n, err := s.f.Write(chunk)
		whole := bytes.LastIndexByte(chunk[:n], '\n') + 1
		if n > whole {
			// A partial line reached the file: cut it off, so that the
			// retry writes it whole.
			if terr := s.f.Truncate(s.size + int64(whole)); terr != nil {
				s.torn = true
				s.size += int64(n - whole)
			}
		}
		recs := bytes.Count(chunk[:whole], []byte("\n"))
		s.size += int64(whole)
		if budget >= 0 {
			budget -= int64(n)
		}
		s.buf = s.buf[:copy(s.buf, s.buf[whole:])]
		s.bufRecs -= recs
		s.led.settle(sinkFile, recs)
		if err != nil {
			return fmt.Errorf("write capture file: %w", err)
		}
		if s.fsync == configs.FsyncFlush {
			if err := s.f.Sync(); err != nil {
				syncErr = fmt.Errorf("sync capture file: %w", err)
			}
		}
	}
	s.bufDay = ""
	if cap(s.buf) > 4*fileBufSize {
		s.buf = nil // do not keep a spill's worth of memory
	}
	return syncErr
}

// rotate closes the current file and opens the next one. On a new day
// (and at start) it continues the day's last file if that has room; on the
// same day it opens the next sequence number. When the new file cannot be
// opened no file is open and the next flush tries the same name again.
func (s *fileSink) rotate(day string) error {
	if s.f != nil {
		if err := s.closeFile(); err != nil {
			s.m.sinkErrors[sinkFile].Add(1)
		}
		if day == s.day {
			s.seq++
		}
	}
	if day != s.day {
		// Recreate the directory if an operator removed it.
		if err := os.MkdirAll(s.dir, 0o750); err != nil {
			return fmt.Errorf("create capture dir: %w", err)
		}
		s.day, s.seq = day, 0
		names, err := listFiles(s.dir)
		if err != nil {
			s.day = ""
			return fmt.Errorf("list capture files: %w", err)
		}
		for _, n := range names {
			if d, seq, _ := parseFileName(filepath.Base(n)); d == day && seq > s.seq {
				s.seq = seq
			}
		}
		s.pruneNow()
		if s.seq == 0 {
			s.seq = 1
		} else if st, err := os.Stat(filepath.Join(s.dir, fileName(day, s.seq))); err != nil || st.Size() >= s.maxBytes {
			s.seq++
		}
	}
	path := filepath.Join(s.dir, fileName(day, s.seq))
	f, err := s.open(path)
	if err != nil {
		return fmt.Errorf("open capture file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat capture file: %w", err)
	}
	s.f, s.size = f, st.Size()
	s.pruneTotal(path)
	if s.size > 0 && !endsInNewline(f, s.size) {
		// A crash left a torn line: seal it, so that ours starts on a
		// fresh line; readers skip the torn one and count it.
		s.torn = true
		s.m.tornLines.Add(1)
	}
	return nil
}

func endsInNewline(f io.ReaderAt, size int64) bool {
	var b [1]byte
	_, err := f.ReadAt(b[:], size-1)
	return err == nil && b[0] == '\n'
}

// closeFile syncs and closes the current file; buffered lines stay for the
// next file.
func (s *fileSink) closeFile() error {
	if s.f == nil {
		return nil
	}
	var err error
	if s.fsync != configs.FsyncOff {
		err = s.f.Sync()
	}
	err = errors.Join(err, s.f.Close())
	s.f, s.size = nil, 0
	if err != nil {
		return fmt.Errorf("close capture file: %w", err)
	}
	return nil
}

// maybePrune deletes expired files at most once an hour.
func (s *fileSink) maybePrune() {
	if s.now().Sub(s.pruned) >= time.Hour {
		s.pruneNow()
	}
}

// pruneNow deletes capture files whose day is RetentionDays or more before
// today.
func (s *fileSink) pruneNow() {
	s.pruned = s.now()
	cutoff := s.now().UTC().AddDate(0, 0, -s.retention).Format(dayLayout)
	names, err := listFiles(s.dir)
	if err != nil {
		return
	}
	for _, n := range names {
		if d, _, _ := parseFileName(filepath.Base(n)); d <= cutoff {
			s.remove(n, fileSize(n), PrunedRetention)
		}
	}
}

// FindInDir finds the record id names under dataDir, resolved as
// FindAllInDir does; for a client ID several records carry, the newest.
func FindInDir(dataDir, id string) (*Record, error) {
	m, err := FindAllInDir(dataDir, id)
	if err != nil {
		return nil, err
	}
	return m.Records[0], nil
}

// readLine reads one line of any length (without its '\n').
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return bytes.TrimSuffix(line, []byte("\n")), err
	}
	buf := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
		line, err = br.ReadSlice('\n')
		buf = append(buf, line...)
	}
	return bytes.TrimSuffix(buf, []byte("\n")), err
}
