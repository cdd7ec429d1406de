package lanmqtt

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// mosquittoHash makes a hash with Debian's mosquitto_passwd.
func mosquittoHash(t *testing.T, password string, iterations int) string {
	t.Helper()
	bin := testpeer.RequireTool(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "pw")
	out, err := exec.Command(bin, "-c", "-H", "sha512-pbkdf2", "-I", strconv.Itoa(iterations), "-b", file, "u", password).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, h, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	return h
}

// Hashes made here and by mosquitto_passwd verify alike: the right password
// passes (again without a derivation once verified), any other does not.
func TestPasswordHashVerify(t *testing.T) {
	ours, err := HashPassword([]byte("s3cret pw"), MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]string{
		"edgegw":           ours,
		"mosquitto_passwd": mosquittoHash(t, "s3cret pw", 1000),
		"mosquitto 101":    mosquittoHash(t, "s3cret pw", 101),
	} {
		t.Run(name, func(t *testing.T) {
			ph, err := parsePasswordHash(h)
			if err != nil {
				t.Fatalf("parse %q: %v", h, err)
			}
			for _, pw := range []string{"s3cret pw", "s3cret pw", "s3cret", "s3cret pw ", ""} {
				want := pw == "s3cret pw"
				if got := ph.verify([]byte(pw), sha256Sum(pw)); got != want {
					t.Errorf("verify(%q) = %t, want %t", pw, got, want)
				}
			}
			if ph.verified.Load() == nil {
				t.Error("a verified password is not remembered")
			}
		})
	}
	if again, _ := HashPassword([]byte("s3cret pw"), MinIterations); again == ours {
		t.Error("two hashes of one password are equal: no random salt")
	}
}

// A hash made by edgegw passwd works in mosquitto's own password file:
// mosquitto, a real peer, lets the right password in and keeps a wrong one
// out.
func TestPasswordHashInMosquitto(t *testing.T) {
	h, err := HashPassword([]byte("pw-for-mosquitto"), MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "passwords")
	if err := os.WriteFile(file, []byte("dev9:"+h+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testpeer.StartMosquitto(t, func(port int) string {
		return "listener " + strconv.Itoa(port) + " 127.0.0.1\nallow_anonymous false\npassword_file " + file + "\n"
	})
	if err := connectErr(t, pahoOpts("tcp://"+addr, "dev9", "dev9", "pw-for-mosquitto")); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if err := connectErr(t, pahoOpts("tcp://"+addr, "dev9", "dev9", "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
}

// LAN users with hashed passwords (ours and mosquitto_passwd's) connect
// with the password, not with the hash, and not with a wrong one.
func TestConnectHashedPassword(t *testing.T) {
	ours, err := HashPassword([]byte("pw1"), MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.Users[0].Password = edgegw.Secret(ours)
	cfg.Users[2].Password = edgegw.Secret(mosquittoHash(t, "pw3", 1000))
	a := start(t, cfg, new(testpeer.Uplink))
	url := brokerURL(a)
	for _, tc := range []struct {
		name               string
		client, user, pass string
		ok                 bool
	}{
		{"edgegw hash", "dev1", "dev1", "pw1", true},
		{"edgegw hash again", "dev1", "dev1", "pw1", true},
		{"the hash itself", "dev1", "dev1", ours, false},
		{"wrong password", "dev1", "dev1", "pw2", false},
		{"mosquitto hash", "any", "sensor", "pw3", true},
		{"mosquitto hash, wrong password", "any", "sensor", "pw1", false},
		{"plain text still accepted", "dev2", "dev2", "pw2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := connectErr(t, pahoOpts(url, tc.client, tc.user, tc.pass))
			if (err == nil) != tc.ok {
				t.Errorf("connect error %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestPasswordHashConfigErrors(t *testing.T) {
	good, _ := HashPassword([]byte("x"), MinIterations)
	parts := strings.Split(good, "$")
	for _, bad := range []string{
		"$7$",
		"$7$1000$abc",
		"$7$x$" + parts[3] + "$" + parts[4],
		"$7$0$" + parts[3] + "$" + parts[4],
		"$7$1000$!!$" + parts[4],
		"$7$1000$" + parts[3] + "$c2hvcnQ=",
		good + "$extra",
	} {
		cfg := baseConfig()
		cfg.Users[0].Password = edgegw.Secret(bad)
		cfg.SetDefaults()
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "users[0].password: not a valid $7$") {
			t.Errorf("%q: %v", bad, err)
		}
		if err != nil && len(bad) > 8 && strings.Contains(err.Error(), bad) {
			t.Errorf("the error shows the configured value: %v", err)
		}
	}
	if _, err := HashPassword([]byte("x"), MinIterations-1); err == nil {
		t.Error("too few iterations accepted")
	}
	if _, err := HashPassword(nil, MinIterations); err == nil {
		t.Error("empty password accepted")
	}
}

// FuzzParsePasswordHash: any string parses or is refused, never panics; a
// parsed hash verifies without panicking.
func FuzzParsePasswordHash(f *testing.F) {
	good, _ := HashPassword([]byte("pw"), MinIterations)
	f.Add(good)
	f.Add("$7$101$9tb+ODP9so+EVrPq$NOl0kc500KJioscVOMSocxYmLot6LZk7igFHf75gkkM/gNxfddw6W1HvR4BYrv/9iSEpByJa+FOpPwPFr860gA==")
	f.Add("$7$$$")
	f.Add("$6$abc$def")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePasswordHash(s)
		if err != nil {
			return
		}
		if h.iterations > 2000 {
			return // parsing is what is fuzzed; a long derivation adds nothing
		}
		h.verify([]byte("pw"), sha256Sum("pw"))
	})
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// BenchmarkPasswordDerive is the cost of one LAN connect with a hashed
// password not verified since start, at the default iterations (go test
// -run=NONE -bench=PasswordDerive ./southbound/lanmqtt/).
func BenchmarkPasswordDerive(b *testing.B) {
	h, err := HashPassword([]byte("pw"), DefaultIterations)
	if err != nil {
		b.Fatal(err)
	}
	ph, _ := parsePasswordHash(h)
	sum := sha256Sum("pw")
	for b.Loop() {
		ph.verified.Store(nil)
		if !ph.verify([]byte("pw"), sum) {
			b.Fatal("not verified")
		}
	}
}
