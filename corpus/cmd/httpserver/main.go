// Command httpserver serves HTTP on 127.0.0.1 (an ephemeral port), printing
// "ADDR host:port" before READY. GET /work?n=N builds N pseudo-random bytes
// and answers with their FNV-1a 64-bit hash as 16 lower-case hex digits;
// byte i is the top byte of i*2654435761 + N (mod 2^32). The tests recompute
// the answer to check the server still computes correctly.
package main

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"strconv"

	"corpus/internal/oracle"
)

const maxWork = 1 << 24

func work(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 0 || n > maxWork {
		http.Error(w, "n must be an integer in 0..16777216", http.StatusBadRequest)
		return
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte((uint32(i)*2654435761 + uint32(n)) >> 24)
	}
	h := fnv.New64a()
	h.Write(data)
	fmt.Fprintf(w, "%016x\n", h.Sum64())
}

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/work", work)
	server := &http.Server{Handler: mux}
	go server.Serve(l)
	fmt.Printf("ADDR %s\n", l.Addr())
	oracle.ReadyAndPark()
}
