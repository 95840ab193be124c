package supervisor

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net"
	"reflect"
	"testing"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

func TestCodecRoundTrip(t *testing.T) {
	cases := []msg{
		{Op: opAttach, Version: Version, Since: 1<<64 - 1},
		{Op: opHello, Version: Version, Pid: 4242},
		{Op: opLines, Dropped: 3, Lines: []api.LogLine{{Seq: 1, TS: 1700000000000, Stream: "stdout", Line: "hello"}, {Seq: 2, TS: -1, Stream: "system", Line: ""}, {Seq: 3, Stream: "stderr", Line: "ü\x00\n"}}},
		{Op: opGap, From: 5, To: 900},
		{Op: opExit, Code: -1, Since: 77},
		{Op: opWrite, ID: 9, Text: "say hi"},
		{Op: opSignal, ID: 10, Sig: 15},
		{Op: opReply, ID: 10, ErrCode: "conflict", Text: "not running"},
		{Op: opBye},
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ca, cb := newCodec(a), newCodec(b)
	go func() {
		for i := range cases {
			_ = ca.send(&cases[i])
		}
	}()
	for _, want := range cases {
		var got msg
		if err := cb.recv(&got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	good := encode(nil, &msg{Op: opLines, Lines: []api.LogLine{{Seq: 1, Stream: "stdout", Line: "x"}}})[4:]
	cases := map[string][]byte{
		"empty":          {},
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"huge string":    append([]byte{byte(opWrite), 0, 0, 0, 0, 0, 0, 0, 0, 0}, binary.AppendUvarint(nil, 1<<40)...),
		"too many lines": append([]byte{byte(opLines), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, binary.AppendUvarint(nil, 1<<30)...),
	}
	for name, p := range cases {
		var m msg
		if err := decode(p, &m); err == nil {
			t.Errorf("%s: decoded %+v", name, m)
		}
	}
	// A frame longer than maxFrame is refused before anything is read.
	a, b := net.Pipe()
	defer a.Close()
	go func() { _, _ = a.Write([]byte{0xff, 0xff, 0xff, 0xff}) }()
	var m msg
	if err := newCodec(b).recv(&m); err == nil {
		t.Fatal("a 4 GiB frame was accepted")
	}
}

// FuzzDecode: no input makes decode panic or allocate beyond its input,
// and whatever decodes encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(encode(nil, &msg{Op: opHello, Version: Version, Pid: 1})[4:])
	f.Add(encode(nil, &msg{Op: opLines, Lines: []api.LogLine{{Seq: 1, TS: 2, Stream: "stdout", Line: "x"}}})[4:])
	f.Add(encode(nil, &msg{Op: opReply, ID: 3, ErrCode: "invalid", Text: "no"})[4:])
	f.Fuzz(func(t *testing.T, p []byte) {
		var m msg
		if decode(p, &m) != nil {
			return
		}
		again := encode(nil, &m)[4:]
		var m2 msg
		if err := decode(again, &m2); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoded %x does not decode to %+v: %+v %v", again, m, m2, err)
		}
		if !bytes.Equal(encode(nil, &m2)[4:], again) {
			t.Fatal("encoding is not stable")
		}
	})
}

func TestExitJSON(t *testing.T) {
	for _, e := range []Exit{
		{},
		{Code: 143, At: 1732640000123, Next: 42},
		{Code: -1, At: 1, Next: 1 << 63, Reason: "OOM-killed \"x\" <&> \u2028 \x01"},
	} {
		want, _ := json.Marshal(e)
		if got := e.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON = %s, json.Marshal = %s", got, want)
		}
	}
}

// The spec reaches the supervisor as the master wrote it, a container's
// too; a truncated or padded one is refused.
func TestSpecRoundTrip(t *testing.T) {
	cases := []Spec{
		{InstanceID: "abc123", Runtime: "process", Dir: "/srv/x", Command: "echo hi; sleep 1", Env: []string{"A=1", "B=ü=2", ""},
			StartedBy: "admin", NextSeq: 1<<63 + 5, LineRate: -1, FileBytes: 1 << 40, FileCount: 7, Cgroup: "/sys/fs/cgroup/u/abc123"},
		{InstanceID: "d", Runtime: "docker", Container: &runtime.ContainerSpec{Image: "alpine:3", MemoryMB: 64, Labels: map[string]string{"a": "b"}}},
		{},
	}
	for _, want := range cases {
		b, err := encodeSpec(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readSpec(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
		if _, err := readSpec(bytes.NewReader(b[:len(b)-1])); err == nil {
			t.Fatal("a truncated spec was read")
		}
		padded := append(append([]byte{}, b...), 0)
		binary.BigEndian.PutUint32(padded, uint32(len(padded)-4))
		if _, err := readSpec(bytes.NewReader(padded)); err == nil {
			t.Fatal("a spec with a byte after it was read")
		}
	}
	huge := binary.BigEndian.AppendUint32(nil, maxSpec+1)
	if _, err := readSpec(bytes.NewReader(huge)); err == nil {
		t.Fatal("a spec over the bound was read")
	}
}
