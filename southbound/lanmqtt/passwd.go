package lanmqtt

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// LAN user passwords may be stored hashed, in mosquitto_passwd's format
// for PBKDF2-SHA512, so that the config file holds no usable secret and
// a mosquitto password file's hashes can be copied over as they are:
//
//	$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512 key, 64 bytes>
//
// `edgegw passwd` makes one (HashPassword). A password beginning with "$7$"
// is taken as such a hash; any other is a plain-text password.

// PasswordHashPrefix starts a hashed password.
const PasswordHashPrefix = "$7$"

// Iteration bounds of a hash this gateway makes or accepts, and the
// default. Each LAN connect of a user whose password was not yet verified
// since start costs one derivation (about 8 ms at 10,000 iterations on a
// 2-core x86 VM, several times that on a Raspberry Pi); a verified password
// is remembered as its SHA-256, so reconnects cost no derivation.
const (
	MinIterations     = 1000
	MaxIterations     = 10_000_000
	DefaultIterations = 10_000
	saltBytes         = 12 // mosquitto_passwd's
	keyBytes          = sha512.Size
)

// kdfSlots bounds the derivations running at once, so that a flood of
// wrong passwords takes at most this many cores.
var kdfSlots = make(chan struct{}, 2)

// passwordHash is a parsed PBKDF2-SHA512 hash with the SHA-256 of the last
// password it accepted.
type passwordHash struct {
	iterations int
	salt, key  []byte
	verified   atomic.Pointer[[32]byte]
}

// IsPasswordHash reports whether a configured password is a hash.
func IsPasswordHash(s string) bool { return strings.HasPrefix(s, PasswordHashPrefix) }

var errBadHash = errors.New("not a valid $7$<iterations>$<salt>$<hash> PBKDF2-SHA512 hash (make one with edgegw passwd)")

// parsePasswordHash parses a hash made by HashPassword or mosquitto_passwd.
func parsePasswordHash(s string) (*passwordHash, error) {
	parts := strings.Split(strings.TrimPrefix(s, PasswordHashPrefix), "$")
	if !IsPasswordHash(s) || len(parts) != 3 {
		return nil, errBadHash
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 || n > MaxIterations {
		return nil, fmt.Errorf("%w: iterations must be 1..%d", errBadHash, MaxIterations)
	}
	salt, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil || len(salt) < 8 {
		return nil, fmt.Errorf("%w: the salt must be base64 of at least 8 bytes", errBadHash)
	}
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(key) != keyBytes {
		return nil, fmt.Errorf("%w: the hash must be base64 of %d bytes", errBadHash, keyBytes)
	}
	return &passwordHash{iterations: n, salt: salt, key: key}, nil
}

// HashPassword returns a new hash of password with a random salt.
func HashPassword(password []byte, iterations int) (string, error) {
	if iterations < MinIterations || iterations > MaxIterations {
		return "", fmt.Errorf("iterations must be %d..%d (got %d)", MinIterations, MaxIterations, iterations)
	}
	if len(password) == 0 {
		return "", errors.New("empty password")
	}
	salt := make([]byte, saltBytes)
	_, _ = rand.Read(salt) // never fails (crypto/rand)
	key, err := pbkdf2.Key(sha512.New, string(password), salt, iterations, keyBytes)
	if err != nil {
		return "", err
	}
	return PasswordHashPrefix + strconv.Itoa(iterations) + "$" + base64.StdEncoding.EncodeToString(salt) +
		"$" + base64.StdEncoding.EncodeToString(key), nil
}

// verify reports whether password matches, comparing in constant time.
// sum is the password's SHA-256: a password verified once
// is recognised by it afterwards without a derivation.
func (h *passwordHash) verify(password []byte, sum [32]byte) bool {
	if v := h.verified.Load(); v != nil && subtle.ConstantTimeCompare(sum[:], v[:]) == 1 {
		return true
	}
	kdfSlots <- struct{}{}
	key, err := pbkdf2.Key(sha512.New, string(password), h.salt, h.iterations, keyBytes)
	<-kdfSlots
	if err != nil || subtle.ConstantTimeCompare(key, h.key) != 1 {
		return false
	}
	h.verified.Store(&sum)
	return true
}
