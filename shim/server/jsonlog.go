package server

import (
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// maxLine is where Docker's log copier cuts a line that has no newline yet: the piece is logged as-is, without
// a trailing "\n", and the rest continues in the next entry.
const maxLine = 16 * 1024

// flushAt is the size at which encoded entries are written out in the middle of one read's lines.
const flushAt = 64 << 10

// jsonLog appends Docker json-file entries to one file. Both streams of a container share it.
type jsonLog struct {
	mu  sync.Mutex
	f   io.Writer // takes whole entries: a *logFile, or any writer in tests
	now func() time.Time
	err error // first write error, reported once in the shim log
}

// lineLog turns one stream's bytes into json-file entries, holding at most one incomplete line.
type lineLog struct {
	log     *jsonLog
	stream  string
	pending []byte
	out     []byte // reused encoding buffer
	ts      []byte // the formatted time of the current write
}

func (l *jsonLog) stream(name string) *lineLog {
	return &lineLog{log: l, stream: name}
}

// Write logs every complete line of p and keeps the incomplete rest, cutting it at maxLine.
func (s *lineLog) Write(p []byte) (int, error) {
	s.ts = s.log.now().UTC().AppendFormat(s.ts[:0], time.RFC3339Nano) // once for all lines of one read
	s.out = s.out[:0]
	s.pending = append(s.pending, p...)
	data := s.pending
	for len(data) > 0 {
		i := indexNL(data, maxLine)
		if i < 0 {
			if len(data) < maxLine {
				break
			}
			i = maxLine - 1 // a full piece without newline
		}
		s.out = appendEntry(s.out, data[:i+1], s.stream, s.ts)
		data = data[i+1:]
		if len(s.out) >= flushAt { // short lines multiply the bytes: write in batches, reuse one buffer
			if err := s.flush(); err != nil {
				s.pending = append(s.pending[:0], data...)
				return len(p), err
			}
		}
	}
	s.pending = append(s.pending[:0], data...)
	return len(p), s.flush()
}

// Close logs what is left of an incomplete line.
func (s *lineLog) Close() error {
	s.out = s.out[:0]
	if len(s.pending) > 0 {
		s.ts = s.log.now().UTC().AppendFormat(s.ts[:0], time.RFC3339Nano)
		s.out = appendEntry(s.out, s.pending, s.stream, s.ts)
		s.pending = s.pending[:0]
	}
	return s.flush()
}

func (s *lineLog) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	s.log.mu.Lock()
	_, err := s.log.f.Write(s.out)
	if err != nil && s.log.err == nil {
		s.log.err = err
	}
	s.log.mu.Unlock()
	s.out = s.out[:0]
	return err
}

// indexNL returns the index of the first '\n' within the first limit bytes of b, or -1.
func indexNL(b []byte, limit int) int {
	if len(b) > limit {
		b = b[:limit]
	}
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// appendEntry appends {"log":...,"stream":...,"time":...}\n in the byte layout of Docker's json-file driver.
func appendEntry(b, line []byte, stream string, ts []byte) []byte {
	b = append(b, `{"log":`...)
	b = appendJSONString(b, line)
	b = append(b, `,"stream":"`...)
	b = append(b, stream...)
	b = append(b, `","time":"`...)
	b = append(b, ts...)
	return append(b, "\"}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s exactly as encoding/json does (HTML-safe, invalid UTF-8 as U+FFFD, U+2028 and
// U+2029 escaped), so `docker logs` decodes every entry back to the bytes the container wrote.
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// logFile is the container's json-file log with the rotation of Docker's json-file driver: when writing an
// entry would take <path> past maxSize, <path>.1 becomes <path>.2 and so on (the oldest, <path>.<maxFiles-1>,
// is removed), <path> becomes <path>.1 and a new <path> is started. With maxFiles 1 the file is removed and
// started again. A new file is a new inode: that is how `logs -f` in the daemon sees a rotation.
type logFile struct {
	path     string
	f        *os.File
	size     int64
	maxSize  int64 // <= 0: no limit, never rotated
	maxFiles int   // files kept in all, counting <path>; at least 1
}

const logPerm = 0o640

// openLogFile opens (appending, as after a restart) or creates the log at path.
func openLogFile(path string, maxSize int64, maxFiles int) (*logFile, error) {
	if maxFiles < 1 {
		maxFiles = 1
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, logPerm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &logFile{path: path, f: f, size: fi.Size(), maxSize: maxSize, maxFiles: maxFiles}, nil
}

// Write writes p, which holds whole entries each ending in '\n' (inside an entry a newline is escaped). With a
// limit it writes as many entries as fit, rotates, and goes on; an entry larger than the limit gets a file of
// its own.
func (l *logFile) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := len(p)
		if l.maxSize > 0 && l.size+int64(n) > l.maxSize {
			n = fitEntries(p, l.maxSize-l.size)
			if n == 0 && l.size > 0 {
				if err := l.rotate(); err != nil {
					return written, err
				}
				continue
			}
			if n == 0 { // one entry larger than the whole limit, into an empty file
				n = len(p)
				if i := indexNL(p, len(p)); i >= 0 {
					n = i + 1
				}
			}
		}
		m, err := l.f.Write(p[:n])
		l.size += int64(m)
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// fitEntries is the length of the longest run of whole entries at the start of p within room bytes.
func fitEntries(p []byte, room int64) int {
	if room <= 0 {
		return 0
	}
	if room < int64(len(p)) {
		p = p[:room]
	}
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '\n' {
			return i + 1
		}
	}
	return 0
}

// rotate shifts the files and starts a new <path>. On failure the current file is kept, so nothing already
// logged is lost and the next write tries again.
func (l *logFile) rotate() error {
	if l.maxFiles > 1 {
		if err := os.Remove(l.rotated(l.maxFiles - 1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return errors.New("rotate " + l.path + ": " + err.Error())
		}
		for i := l.maxFiles - 1; i > 1; i-- {
			if err := os.Rename(l.rotated(i-1), l.rotated(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return errors.New("rotate " + l.path + ": " + err.Error())
			}
		}
		// Not there: an earlier rotation moved it and then failed to start the new file.
		if err := os.Rename(l.path, l.rotated(1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return errors.New("rotate " + l.path + ": " + err.Error())
		}
	} else if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return errors.New("rotate " + l.path + ": " + err.Error())
	}
	// O_EXCL: whatever holds the name now is not ours to append to.
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, logPerm)
	if err != nil {
		return errors.New("rotate " + l.path + ": start a new file: " + err.Error())
	}
	l.f.Close()
	l.f, l.size = f, 0
	return nil
}

func (l *logFile) rotated(i int) string { return l.path + "." + strconv.Itoa(i) }

func (l *logFile) Close() error { return l.f.Close() }
