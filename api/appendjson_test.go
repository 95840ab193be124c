package api

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fill sets every exported field of the struct v points to from seed:
// strings with what JSON must escape, numbers, true, pointers to numbers.
func fill(v reflect.Value, seed int, only int) {
	strs := []string{"a\"b\\c\n\t\r<>&\u2028\u2029\x00\x1f\b\f", "ok", "\xff\xfeinvalid", "ünïcode 😀", ""}
	for i := 0; i < v.NumField(); i++ {
		if only >= 0 && i != only {
			continue
		}
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(strs[(seed+i)%len(strs)])
		case reflect.Int, reflect.Int64:
			f.SetInt(int64((seed+i)*7919 - 3000))
		case reflect.Bool:
			f.SetBool((seed+i)%3 != 0)
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			p.Elem().SetInt(int64(seed - i))
			f.Set(p)
		}
	}
}

// TestAppendJSONMatchesEncodingJSON: an instance appended by hand is byte
// for byte what encoding/json gives, for the zero value, every field set
// alone, and every field set at once (with strings JSON must escape): a
// field added to InstanceInfo and not to AppendJSON fails here.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	check := func(name string, in InstanceInfo) {
		t.Helper()
		want, err := json.Marshal(&in)
		if err != nil {
			t.Fatal(err)
		}
		if got := in.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	check("zero", InstanceInfo{})
	n := reflect.TypeOf(InstanceInfo{}).NumField()
	for i := 0; i < n; i++ {
		for seed := 0; seed < 5; seed++ {
			var in InstanceInfo
			fill(reflect.ValueOf(&in).Elem(), seed, i)
			check(reflect.TypeOf(in).Field(i).Name, in)
		}
	}
	for seed := 0; seed < 10; seed++ {
		var in InstanceInfo
		fill(reflect.ValueOf(&in).Elem(), seed, -1)
		check("all", in)
	}
}

// TestNodeAppendJSONMatchesEncodingJSON: the node's answer by hand is what
// encoding/json gives, empty and filled (every field of its parts set).
func TestNodeAppendJSONMatchesEncodingJSON(t *testing.T) {
	check := func(name string, n Node) {
		t.Helper()
		want, err := json.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	check("zero", Node{})
	for seed := 0; seed < 5; seed++ {
		var n Node
		fill(reflect.ValueOf(&n).Elem(), seed, -1)
		fill(reflect.ValueOf(&n.Limits).Elem(), seed, -1)
		n.Instances.Total = seed * 3
		n.Instances.ByState = map[string]int{"ONLINE": seed, "CREATING": 1, "STOPPED": 0, "OFFLINE": -2, "a<b": 9}
		n.Runtimes = make([]RuntimeInfo, seed)
		for i := range n.Runtimes {
			fill(reflect.ValueOf(&n.Runtimes[i]).Elem(), seed+i, -1)
		}
		check("filled", n)
		for i := 0; i < reflect.TypeOf(RuntimeInfo{}).NumField(); i++ {
			n.Runtimes = []RuntimeInfo{{}}
			fill(reflect.ValueOf(&n.Runtimes[0]).Elem(), seed, i)
			check("runtime field", n)
		}
		n.Runtimes = []RuntimeInfo{}
		check("no runtimes", n)
	}
}
