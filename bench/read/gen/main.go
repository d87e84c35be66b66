// Command gen makes the traffic of the read benchmark (bench/read/run.sh):
// a real HTTP/1.1 server and TLS server, and real net/http clients with
// keep-alive, so that the capture holds what a cluster's traffic holds.
//
//	gen server                       # HTTP on :80, TLS on :443
//	gen client -base http://IP -n N  # prints the number of 500s it got
//	gen tls -addr IP:443 -n N        # TLS handshakes with SNI and ALPN
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: gen server|client|tls [flags]")
	}
	switch os.Args[1] {
	case "server":
		server()
	case "client":
		client(os.Args[2:])
	case "tls":
		tlsClients(os.Args[2:])
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}

var filler = []byte(strings.Repeat("kflcap benchmark body 0123456789 ", 2048))

// server answers /s/<status>/<bytes> with that status and body size.
func server() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/")
		code, size := 200, 64
		if len(parts) >= 4 && parts[1] == "s" {
			code, _ = strconv.Atoi(parts[2])
			size, _ = strconv.Atoi(parts[3])
		}
		if r.Body != nil {
			io.Copy(io.Discard, r.Body)
		}
		size = min(size, len(filler))
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.WriteHeader(code)
		w.Write(filler[:size])
	})
	go func() {
		srv := &http.Server{Addr: ":443", Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned()}}}
		log.Fatal(srv.ListenAndServeTLS("", ""))
	}()
	log.Fatal(http.ListenAndServe(":80", h))
}

func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"*.bench.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// client sends n requests over c keep-alive connections (each closed after
// 100 requests, so that there are many streams) and prints how many 500
// responses it received: the ground truth for the benchmark's counts.
func client(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	base := fs.String("base", "http://10.99.0.2", "server URL")
	n := fs.Int("n", 100000, "requests")
	c := fs.Int("c", 8, "concurrent connections")
	seed := fs.Uint64("seed", 1, "random seed")
	fs.Parse(args)
	var got500, done atomic.Int64
	var wg sync.WaitGroup
	per := *n / *c
	for w := range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(*seed, uint64(w)))
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true,
				DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
			for i := range per {
				code := 200
				switch r := rng.IntN(100); {
				case r < 2:
					code = 500
				case r < 5:
					code = 404
				case r < 6:
					code = 302
				case r < 7:
					code = 204
				}
				size := 100 + rng.IntN(700)
				if rng.IntN(100) < 15 {
					size = 4096 + rng.IntN(28*1024)
				}
				url := fmt.Sprintf("%s/s/%d/%d?req=%d&w=%d", *base, code, size, i, w)
				var req *http.Request
				if rng.IntN(10) == 0 {
					req, _ = http.NewRequest("POST", url, strings.NewReader("form=value&n="+strconv.Itoa(i)))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				} else {
					req, _ = http.NewRequest("GET", url, nil)
				}
				req.Header.Set("User-Agent", "kflcap-bench/1")
				req.Close = i%100 == 99
				// Do not follow redirects: count what was sent.
				resp, err := tr.RoundTrip(req)
				if err != nil {
					log.Printf("request: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 500 {
					got500.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("requests=%d responses500=%d\n", done.Load(), got500.Load())
}

// tlsClients makes n TLS handshakes (with SNI and ALPN) and one request each.
func tlsClients(args []string) {
	fs := flag.NewFlagSet("tls", flag.ExitOnError)
	addr := fs.String("addr", "10.99.0.2:443", "server")
	n := fs.Int("n", 1000, "connections")
	fs.Parse(args)
	ok := 0
	for i := range *n {
		conn, err := tls.Dial("tcp", *addr, &tls.Config{InsecureSkipVerify: true,
			ServerName: fmt.Sprintf("svc-%d.bench.test", i%50), NextProtos: []string{"http/1.1"}})
		if err != nil {
			log.Printf("tls: %v", err)
			continue
		}
		fmt.Fprintf(conn, "GET /s/200/100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		io.Copy(io.Discard, conn)
		conn.Close()
		ok++
	}
	fmt.Printf("tls_connections=%d\n", ok)
}
