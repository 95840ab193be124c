package supervisor

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

// The wire format of msg: a frame is a 4-byte big-endian length and that
// many bytes of payload. The payload is the op byte; then ID, Version,
// Since, Pid, Dropped, From, To, Code and Sig as varints (unsigned for the
// uint64 fields, zigzag for the int fields); then Text and ErrCode, each a
// uvarint length and the bytes; then the number of lines and, for each,
// Seq, TS, Stream and Line the same way.
//
// It is written by hand rather than with encoding/gob: gob's reflection
// touches megabytes of the binary's type data in every supervisor, and a
// fixed format is easy to bound and to fuzz (FuzzDecode).

// maxFrame bounds a frame; a bigger length is a broken or hostile peer.
const maxFrame = 64 << 20

var errFrame = errors.New("malformed supervisor frame")

type codec struct {
	conn conn
	r    *bufio.Reader
	out  []byte // send's buffer (callers serialise sends)
	in   []byte // recv's buffer
}

func newCodec(c conn) *codec {
	return &codec{conn: c, r: bufio.NewReaderSize(c, 4096)}
}

// send writes m; callers serialise sends.
func (c *codec) send(m *msg) error {
	c.out = encode(c.out[:0], m)
	if len(c.out) > 8<<10 {
		defer func() { c.out = nil }() // do not keep a big batch's buffer
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := c.conn.Write(c.out)
	return err
}

func (c *codec) recv(m *msg) error {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("%w: length %d", errFrame, n)
	}
	if cap(c.in) < int(n) {
		c.in = make([]byte, n)
	}
	buf := c.in[:n]
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return err
	}
	err := decode(buf, m)
	if n > 8<<10 {
		c.in = nil
	}
	return err
}

// encode appends the frame of m to b.
func encode(b []byte, m *msg) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, byte(m.Op))
	b = binary.AppendUvarint(b, m.ID)
	b = binary.AppendVarint(b, int64(m.Version))
	b = binary.AppendUvarint(b, m.Since)
	b = binary.AppendVarint(b, int64(m.Pid))
	b = binary.AppendVarint(b, int64(m.Dropped))
	b = binary.AppendUvarint(b, m.From)
	b = binary.AppendUvarint(b, m.To)
	b = binary.AppendVarint(b, int64(m.Code))
	b = binary.AppendVarint(b, int64(m.Sig))
	b = appendString(b, m.Text)
	b = appendString(b, m.ErrCode)
	b = binary.AppendUvarint(b, uint64(len(m.Lines)))
	for _, ln := range m.Lines {
		b = binary.AppendUvarint(b, ln.Seq)
		b = binary.AppendVarint(b, ln.TS)
		b = appendString(b, ln.Stream)
		b = appendString(b, ln.Line)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decoder reads a payload; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errFrame
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint undoes binary.AppendVarint: a zigzag-encoded uvarint.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.err = errFrame
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errFrame
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// decode parses a payload (the frame without its length) into m.
func decode(p []byte, m *msg) error {
	*m = msg{}
	if len(p) == 0 {
		return errFrame
	}
	m.Op = op(p[0])
	d := &decoder{b: p[1:]}
	m.ID = d.uvarint()
	m.Version = d.int()
	m.Since = d.uvarint()
	m.Pid = d.int()
	m.Dropped = d.int()
	m.From = d.uvarint()
	m.To = d.uvarint()
	m.Code = d.int()
	m.Sig = d.int()
	m.Text = d.string()
	m.ErrCode = d.string()
	n := d.uvarint()
	// Each line takes at least 4 bytes: never allocate for more lines than
	// the payload can hold.
	if d.err == nil && n > uint64(len(d.b))/4 {
		d.err = errFrame
	}
	if d.err == nil && n > 0 {
		m.Lines = make([]api.LogLine, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			m.Lines = append(m.Lines, api.LogLine{Seq: d.uvarint(), TS: d.varint(), Stream: d.string(), Line: d.string()})
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errFrame // trailing bytes
	}
	if d.err != nil {
		*m = msg{}
		return d.err
	}
	return nil
}

// maxSpec bounds the spec a supervisor reads on its stdin.
const maxSpec = 16 << 20

// encodeSpec is the spec as the master writes it to its supervisor's
// stdin: the length, then the fields in this encoding's varints and
// strings; a container's spec (container runtimes only, whose supervisor
// is the whole binary) as JSON inside. encoding/json's first decode of
// Spec in each supervisor cost a start more CPU than the rest of reading
// it (bench/fleet -perf).
func encodeSpec(s Spec) ([]byte, error) {
	var container []byte
	if s.Container != nil {
		var err error
		if container, err = json.Marshal(s.Container); err != nil {
			return nil, err
		}
	}
	b := []byte{0, 0, 0, 0}
	for _, f := range []string{s.InstanceID, s.Runtime, s.Dir, s.Command} {
		b = appendString(b, f)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Env)))
	for _, kv := range s.Env {
		b = appendString(b, kv)
	}
	b = appendString(b, s.StartedBy)
	b = binary.AppendUvarint(b, s.NextSeq)
	b = binary.AppendVarint(b, int64(s.LineRate))
	b = binary.AppendVarint(b, s.FileBytes)
	b = binary.AppendVarint(b, int64(s.FileCount))
	b = appendString(b, s.Cgroup)
	b = appendString(b, string(container))
	if len(b)-4 > maxSpec {
		return nil, fmt.Errorf("the spec is %d bytes, over %d", len(b)-4, maxSpec)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// readSpec reads what encodeSpec wrote.
func readSpec(r io.Reader) (Spec, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Spec{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxSpec {
		return Spec{}, fmt.Errorf("%w: spec of %d bytes", errFrame, n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return Spec{}, err
	}
	d := decoder{b: p}
	var s Spec
	s.InstanceID, s.Runtime, s.Dir, s.Command = d.string(), d.string(), d.string(), d.string()
	env := d.uvarint()
	if env > uint64(len(d.b)) { // each takes a byte at least
		return Spec{}, errFrame
	}
	for i := uint64(0); i < env && d.err == nil; i++ {
		s.Env = append(s.Env, d.string())
	}
	s.StartedBy = d.string()
	s.NextSeq = d.uvarint()
	s.LineRate = d.int()
	s.FileBytes = d.varint()
	s.FileCount = d.int()
	s.Cgroup = d.string()
	container := d.string()
	if d.err != nil {
		return Spec{}, d.err
	}
	if len(d.b) != 0 {
		return Spec{}, fmt.Errorf("%w: %d bytes after the spec", errFrame, len(d.b))
	}
	if container != "" {
		s.Container = new(runtime.ContainerSpec)
		if err := json.Unmarshal([]byte(container), s.Container); err != nil {
			return Spec{}, err
		}
	}
	return s, nil
}
