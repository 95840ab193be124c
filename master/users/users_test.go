package users

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

func TestHashAndVerify(t *testing.T) {
	h, err := Hash("correct horse battery", Params{Time: 1, MemKiB: 8 << 10, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters", h)
	}
	if !Verify(h, "correct horse battery") || Verify(h, "correct horse batterY") || Verify(h, "") {
		t.Fatal("verify")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2i$v=19$m=8192,t=1,p=1$AAAA$AAAA", strings.Replace(h, "t=1", "t=99", 1)} {
		if Verify(bad, "correct horse battery") {
			t.Fatalf("a malformed hash matched: %q", bad)
		}
	}
	h2, _ := Hash("correct horse battery", Params{Time: 1, MemKiB: 8 << 10, Threads: 1})
	if h == h2 {
		t.Fatal("two hashes of one password are the same: no salt")
	}
}

func TestWeakPasswords(t *testing.T) {
	for _, c := range []struct{ name, pw string }{{"alice", "short"}, {"alicealice", "AliceAlice"}, {"bob", "123456789"}} {
		if ValidatePassword(c.name, c.pw) == nil {
			t.Errorf("%q for %s was taken", c.pw, c.name)
		}
	}
	if err := ValidatePassword("alice", "a long enough one"); err != nil {
		t.Fatal(err)
	}
}

func TestRights(t *testing.T) {
	r := NewRights([]Grant{
		{InstanceID: "i1", Permissions: []string{"console.read"}},
		{Configuration: "lobby", Permissions: []string{"power.start", "instance.read"}},
	}, nil)
	cases := []struct {
		perm, id, cfg string
		want          bool
	}{
		{"console.read", "i1", "game", true},
		{"console.write", "i1", "game", false},
		{"power.start", "i9", "lobby", true}, // any instance of lobby, future ones too
		{"power.start", "i1", "game", false},
		{"instance.read", "", "lobby", true},
	}
	for _, c := range cases {
		if got := r.Allowed(c.perm, c.id, c.cfg); got != c.want {
			t.Errorf("%s on %s/%s: %v", c.perm, c.cfg, c.id, got)
		}
	}
	n := r.Narrowed([]string{"power.start", "file.write"})
	if n.Allowed("instance.read", "i2", "lobby") || !n.Allowed("power.start", "i2", "lobby") || n.Allowed("file.write", "i2", "lobby") {
		t.Fatal("a narrowed key holds more than its list, or than its user")
	}
	if !r.Holds([]string{"power.start"}, "", "lobby") || r.Holds([]string{"power.start", "power.kill"}, "", "lobby") {
		t.Fatal("holds")
	}
	a := AdminRights.Narrowed([]string{"instance.read"})
	if a.Admin || !a.Allowed("instance.read", "x", "y") || a.Allowed("power.kill", "x", "y") {
		t.Fatal("an admin's narrowed key")
	}
}

func TestTOTPCodeIsGoodOnce(t *testing.T) {
	secret, url, err := NewTOTP("alice")
	if err != nil || !strings.HasPrefix(url, "otpauth://totp/Universe:alice?") {
		t.Fatalf("%q %v", url, err)
	}
	now := time.Unix(1_800_000_000, 0)
	code, _ := totp.GenerateCode(secret, now)
	step, err := CheckTOTP(secret, code, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckTOTP(secret, code, now.Add(10*time.Second), step); err == nil {
		t.Fatal("a code was taken twice")
	}
	if _, err := CheckTOTP(secret, "000000", now, 0); err == nil && code != "000000" {
		t.Fatal("a wrong code was taken")
	}
	later := now.Add(30 * time.Second)
	code2, _ := totp.GenerateCode(secret, later)
	if _, err := CheckTOTP(secret, code2, later, step); err != nil {
		t.Fatalf("the next step's code: %v", err)
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, hashes := NewRecoveryCodes(10)
	if len(codes) != 10 || len(hashes) != 10 || codes[0] == codes[1] {
		t.Fatal(codes)
	}
	if RecoveryHash(strings.ToUpper(codes[3])+" ") != hashes[3] {
		t.Fatal("a recovery code typed in capitals")
	}
}

// BenchmarkAllowed: a member with 1,000 grants (the bound: ≤ 1 µs
// a request).
func BenchmarkAllowed(b *testing.B) {
	var gs []Grant
	for i := range 1000 {
		gs = append(gs, Grant{InstanceID: "i" + strconv.Itoa(i), Permissions: []string{"console.read", "power.start"}})
	}
	r := NewRights(gs, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !r.Allowed("power.start", "i500", "game") {
			b.Fatal("denied")
		}
	}
}

// BenchmarkHash: the default parameters (the bound: ≥ 50 ms a
// hash on the project's machines).
func BenchmarkHash(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_, _ = Hash("a password of some length", Default)
	}
}
