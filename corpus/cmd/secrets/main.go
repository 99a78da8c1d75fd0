// Command secrets holds key material and ordinary data side by side, for the
// redaction tests (issue 10): `rdlv redact --keep EXPR` keeps only what EXPR
// designates, `--keep-deep` what that reaches, and a value whose type reaches
// key material is refused unless --force.
//
// Before READY it prints:
//
//	CANARY 0x<addr> <len> <hex>   a random secret (crypto/rand) in a heap string,
//	                              main.cache["secret"], which no kept value reaches
//	NAME <s>                      main.cfg.Name, built at run time
//	LOGIN <s>                     main.cfg.Owner.Login, built at run time
//	CACHED <s>                    main.cache["k"], built at run time
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"corpus/internal/oracle"
)

// Config is ordinary configuration: nothing in it is key material.
type Config struct {
	Name   string
	Tags   []string
	Limits map[string]int
	Owner  *User
}

// User is reached from Config through a pointer.
type User struct {
	Login string
	ID    int
}

// Server reaches key material through a field whose name says nothing of it.
type Server struct {
	Name      string
	Addr      string
	TLSConfig *tls.Config
}

type holder struct {
	Label string
	Priv  *ecdsa.PrivateKey
}

// Vault reaches a private key through a slice of structs.
type Vault struct {
	Holders []holder
}

var (
	cfg    Config
	cache  = map[string]string{}
	srv    *Server
	vault  Vault
	signer crypto.Signer
	// anyKey is an interface holding a private key: only a deep keep that
	// looks at the dynamic value can see it.
	anyKey any
	// many has more elements than the loader takes from one collection.
	many []int
)

func main() {
	canary := flag.Int("canary", 4096, "bytes of random secret")
	flag.Parse()
	pid := strconv.Itoa(os.Getpid())
	cfg = Config{
		Name:   "svc-" + pid + "-name",
		Tags:   []string{"blue-" + pid, "green-" + pid},
		Limits: map[string]int{"rps": 100},
		Owner:  &User{Login: "alice-" + pid, ID: 7},
	}
	cache["k"] = "cached-" + pid + "-value"
	secret := make([]byte, *canary)
	if _, err := rand.Read(secret); err != nil {
		fmt.Fprintln(os.Stderr, "secrets: crypto/rand:", err)
		os.Exit(1)
	}
	cache["secret"] = string(secret)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fmt.Fprintln(os.Stderr, "secrets: ecdsa:", err)
		os.Exit(1)
	}
	srv = &Server{Name: "api-" + pid, Addr: ":8443", TLSConfig: &tls.Config{ServerName: "api", MinVersion: tls.VersionTLS12}}
	vault = Vault{Holders: []holder{{Label: "primary", Priv: key}}}
	signer = key
	anyKey = key
	many = make([]int, 200_000)
	for i := range many {
		many[i] = i
	}
	s := cache["secret"]
	fmt.Printf("CANARY 0x%x %d %s\n", uintptr(unsafe.Pointer(unsafe.StringData(s))), len(s), hex.EncodeToString(secret))
	fmt.Printf("NAME %s\n", cfg.Name)
	fmt.Printf("LOGIN %s\n", cfg.Owner.Login)
	fmt.Printf("CACHED %s\n", cache["k"])
	oracle.ReadyAndPark()
}
