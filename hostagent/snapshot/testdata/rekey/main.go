// Command rekey rewrites a restic repository key with cheap scrypt
// parameters, for a test fixture.
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/poly1305"
	"golang.org/x/crypto/scrypt"
)

type key struct {
	Created  string `json:"created"`
	Username string `json:"username"`
	Hostname string `json:"hostname"`
	KDF      string `json:"kdf"`
	N        int    `json:"N"`
	R        int    `json:"r"`
	P        int    `json:"p"`
	Salt     []byte `json:"salt"`
	Data     []byte `json:"data"`
}

var mask = [16]byte{0xff, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f}

func derive(pw string, salt []byte, n, r, p int) (enc, mk, mr []byte) {
	b, err := scrypt.Key([]byte(pw), salt, n, r, p, 64)
	if err != nil {
		panic(err)
	}
	enc, mk, mr = b[:32], b[32:48], append([]byte(nil), b[48:64]...)
	for i := range mr {
		mr[i] &= mask[i]
	}
	return
}

func mac(msg, nonce, mk, mr []byte) [16]byte {
	var k [32]byte
	c, _ := aes.NewCipher(mk)
	c.Encrypt(k[16:], nonce)
	copy(k[:16], mr)
	var out [16]byte
	poly1305.Sum(&out, msg, &k)
	return out
}

func main() {
	repo, pw := os.Args[1], os.Args[2]
	files, _ := filepath.Glob(filepath.Join(repo, "keys", "*"))
	raw, _ := os.ReadFile(files[0])
	var k key
	if err := json.Unmarshal(raw, &k); err != nil {
		panic(err)
	}
	enc, mk, mr := derive(pw, k.Salt, k.N, k.R, k.P)
	nonce, ct := k.Data[:16], k.Data[16:]
	body, tag := ct[:len(ct)-16], ct[len(ct)-16:]
	if m := mac(body, nonce, mk, mr); string(m[:]) != string(tag) {
		panic("mac mismatch")
	}
	plain := make([]byte, len(body))
	c, _ := aes.NewCipher(enc)
	cipher.NewCTR(c, nonce).XORKeyStream(plain, body)

	k.N, k.R, k.P = 1024, 8, 1
	k.Salt = make([]byte, 64)
	rand.Read(k.Salt)
	enc, mk, mr = derive(pw, k.Salt, k.N, k.R, k.P)
	nonce = make([]byte, 16)
	rand.Read(nonce)
	out := make([]byte, len(plain))
	c, _ = aes.NewCipher(enc)
	cipher.NewCTR(c, nonce).XORKeyStream(out, plain)
	m := mac(out, nonce, mk, mr)
	k.Data = append(append(nonce, out...), m[:]...)
	k.Username, k.Hostname = "drplane", "fixture"
	nb, _ := json.Marshal(k)
	sum := sha256.Sum256(nb)
	os.Remove(files[0])
	if err := os.WriteFile(filepath.Join(repo, "keys", hex.EncodeToString(sum[:])), nb, 0o400); err != nil {
		panic(err)
	}
	fmt.Println("ok")
}
