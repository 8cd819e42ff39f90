package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
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
type fileSink struct {
	dir       string
	maxBytes  int64
	retention int
	now       func() time.Time

	f      *os.File
	bw     *bufio.Writer
	size   int64
	day    string
	seq    int
	dirty  bool
	pruned time.Time

	// today's name and bounds, so that write formats the day once a day.
	todayName          string
	todayStart, dayEnd time.Time
}

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

func newFileSink(dataDir string, maxBytes int64, retentionDays int, now func() time.Time) (*fileSink, error) {
	dir := filepath.Join(dataDir, captureSubdir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create capture dir: %w", err)
	}
	if maxBytes < 1<<10 {
		maxBytes = 64 << 20
	}
	if retentionDays < 1 {
		retentionDays = 7
	}
	return &fileSink{dir: dir, maxBytes: maxBytes, retention: retentionDays, now: now}, nil
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

// write appends one line (which must end in '\n'). An error closing the
// previous file is returned after the line was written to the next one.
func (s *fileSink) write(line []byte) error {
	day := s.today()
	var cerr error
	if s.f == nil || day != s.day || (s.size > 0 && s.size+int64(len(line)) > s.maxBytes) {
		var err error
		if cerr, err = s.rotate(day); err != nil {
			return errors.Join(cerr, err)
		}
	}
	n, err := s.bw.Write(line)
	s.size += int64(n)
	s.dirty = true
	if err != nil {
		s.drop()
		return errors.Join(cerr, fmt.Errorf("write capture file: %w", err))
	}
	return cerr
}

// rotate closes the current file and opens the next one. On a new day
// (and at start) it continues the day's last file if that has room; on the
// same day it opens the next sequence number. closeErr is the error closing
// the previous file; err means no file is open.
func (s *fileSink) rotate(day string) (closeErr, err error) {
	if s.f != nil {
		closeErr = s.closeFile()
	}
	if day != s.day {
		s.day, s.seq = day, 0
		names, err := listFiles(s.dir)
		if err != nil {
			return closeErr, fmt.Errorf("list capture files: %w", err)
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
	} else {
		s.seq++
	}
	path := filepath.Join(s.dir, fileName(day, s.seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return closeErr, fmt.Errorf("open capture file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return closeErr, fmt.Errorf("stat capture file: %w", err)
	}
	s.f, s.size = f, st.Size()
	s.bw = bufio.NewWriterSize(f, fileBufSize)
	if s.size > 0 && !endsInNewline(f, s.size) {
		// A crash left a partial line: start ours on a fresh one.
		n, _ := s.bw.WriteString("\n")
		s.size += int64(n)
	}
	return closeErr, nil
}

func endsInNewline(f *os.File, size int64) bool {
	var b [1]byte
	_, err := f.ReadAt(b[:], size-1)
	return err == nil && b[0] == '\n'
}

// flush writes buffered lines to the file (not to disk).
func (s *fileSink) flush() error {
	if s.bw == nil || !s.dirty {
		return nil
	}
	s.dirty = false
	if err := s.bw.Flush(); err != nil {
		s.drop()
		return fmt.Errorf("flush capture file: %w", err)
	}
	return nil
}

// drop abandons the current file after an I/O error; the next write opens
// a new one.
func (s *fileSink) drop() {
	if s.f != nil {
		s.f.Close()
	}
	// The next write opens the next sequence number: never append after a
	// possibly torn write.
	s.f, s.bw, s.size, s.dirty = nil, nil, 0, false
}

func (s *fileSink) closeFile() error {
	err := s.flush()
	if s.f == nil {
		return err
	}
	err = errors.Join(err, s.f.Sync(), s.f.Close())
	s.f, s.bw, s.size, s.dirty = nil, nil, 0, false
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
			os.Remove(n)
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
