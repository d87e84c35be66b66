package dissect_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/sys/unix"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// inNetns runs f on a thread switched into namespace ns: sockets f creates
// belong to ns for their whole life, whichever thread uses them later.
func inNetns(t testing.TB, ns string, f func() error) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine.
		t.Fatalf("setns back: %v", err)
	}
	runtime.UnlockOSThread()
	if ferr != nil {
		t.Fatal(ferr)
	}
}

// listenIn listens on addr inside namespace ns.
func listenIn(t testing.TB, ns, addr string) net.Listener {
	var l net.Listener
	inNetns(t, ns, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	t.Cleanup(func() { l.Close() })
	return l
}

// clientIn returns an HTTP/2 prior-knowledge client whose connections are
// made in namespace ns.
func clientIn(t *testing.T, ns string) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols), MaxConnsPerHost: 1}
	tr.Protocols.SetUnencryptedHTTP2(true)
	tr.DialContext = func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		inNetns(t, ns, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return nil
		})
		return c, err
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// h2Handler answers /status/N with N, /echo with the request body, /big with
// 100 kB, and sets a cookie-free response header for the checks.
func h2Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.Header().Set("X-Kflcap", "h2")
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d\n", code)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 100_000)))
	})
	return mux
}

// serveH2C runs an h2c server in namespace ns: net/http's own unencrypted
// HTTP/2 (prior knowledge), or with upgrade, x/net's h2c handler for
// "Upgrade: h2c", which net/http does not implement.
func serveH2C(t *testing.T, ns, addr string, upgrade bool) {
	l := listenIn(t, ns, addr)
	srv := &http.Server{Handler: h2Handler(), ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	if upgrade {
		srv.Protocols.SetUnencryptedHTTP2(false)
		srv.Handler = h2c.NewHandler(h2Handler(), &http2.Server{})
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// h2Traffic drives curl against the Go h2c server in B: prior knowledge
// on 8082 (one connection with several requests, parallel multiplexed
// streams, a POST body, a 100 kB response) and Upgrade: h2c on 8080.
func h2Traffic(t *testing.T, p *netnstest.Pair) {
	netnstest.RequireTool(t, "curl")
	serveH2C(t, p.B, ":8082", false)
	serveH2C(t, p.B, ":8080", true)
	base := "http://" + p.IPB + ":8082"
	var urls []string
	for _, c := range []int{200, 201, 404, 500, 503} {
		urls = append(urls, fmt.Sprintf("%s/status/%d?q=%d", base, c, c))
	}
	pk := []string{"-s", "-o", "/dev/null", "--http2-prior-knowledge"}
	// One URL per curl: curl 7.88 fails reusing a prior-knowledge
	// connection ("Error in the HTTP2 framing layer").
	for _, u := range urls {
		netnstest.Exec(t, p.A, "curl", append(pk, u)...)
	}
	// Multiplexing: Go's client, 10 concurrent streams on one connection.
	c := clientIn(t, p.A)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			resp, err := c.Get(urls[i%len(urls)])
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	c.CloseIdleConnections()
	netnstest.Exec(t, p.A, "curl", append(pk, "-d", strings.Repeat("y", 20_000), base+"/echo")...)
	netnstest.Exec(t, p.A, "curl", append(pk, "-b", "sid=abc", base+"/big")...)
	netnstest.Exec(t, p.A, "curl", "-s", "-o", "/dev/null", "--http2", "http://"+p.IPB+":8080/status/202")
}

func TestHTTP2AgainstTshark(t *testing.T) {
	path, entries, st := captureClean(t, "http2", func(p *netnstest.Pair) { h2Traffic(t, p) })
	got, want := h2Tuples(entries), tsharkH2Tuples(t, path)
	if len(want) < 15 {
		t.Fatalf("tshark saw only %d HTTP/2 exchanges; the traffic did not run: %q", len(want), want)
	}
	diffSets(t, "HTTP/2 (stream, method, path, status)", got, want)
	t.Logf("%d HTTP/2 exchanges equal to tshark's; stats %+v", len(got), st)
	checkH2Details(t, entries)
}

// h2Tuples are kflcap's (tcp stream, method, path, status[, grpc-status])
// of HTTP/2 streams with a response.
func h2Tuples(entries []*dissect.Entry) []string {
	ranks := streamRanks(entries)
	var out []string
	for _, e := range entries {
		if e.HTTP == nil || e.Protocol.Version != "2.0" || !e.HTTP.HasResponse || e.HTTP.Partial {
			continue
		}
		if e.Dst.Port == 8080 {
			continue // h2c upgrade: tshark shows stream 1's request as HTTP/1.1 (checkH2Details covers it)
		}
		s := fmt.Sprintf("%d %s %s %d", ranks[e.StreamID], e.HTTP.Request.Method, e.HTTP.Request.URL, e.HTTP.Response.Status)
		if g := e.GRPC; g != nil && g.HasStatus {
			s += fmt.Sprintf(" grpc-status=%d", g.Status)
		}
		out = append(out, s)
	}
	return out
}

// pdmlField is a field of tshark's PDML output, with its children.
type pdmlField struct {
	Name   string      `xml:"name,attr"`
	Show   string      `xml:"show,attr"`
	Fields []pdmlField `xml:"field"`
}

type pdmlPacket struct {
	Protos []struct {
		Name   string      `xml:"name,attr"`
		Fields []pdmlField `xml:"field"`
	} `xml:"proto"`
}

// tsharkH2Tuples reads tshark's HTTP/2 frames (PDML: frames nest their
// headers) and pairs each stream's request and response headers.
func tsharkH2Tuples(t *testing.T, path string) []string {
	netnstest.SkipShort(t, "tshark oracle")
	netnstest.RequireTool(t, "tshark")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tshark", "-n", "-r", path, "-Y", "http2", "-T", "pdml",
		"-d", "tcp.port==8080,http", "-d", "tcp.port==8082,http2", "-d", "tcp.port==50051,http2")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	type h2s struct {
		method, path, status, grpcStatus string
		order                            int
	}
	streams := map[string]*h2s{}
	var order []string
	dec := xml.NewDecoder(strings.NewReader(string(out)))
	for {
		var pkt pdmlPacket
		tok, err := dec.Token()
		if err != nil {
			break
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "packet" {
			continue
		}
		if err := dec.DecodeElement(&pkt, &se); err != nil {
			t.Fatal(err)
		}
		tcpStream := ""
		for _, pr := range pkt.Protos {
			if pr.Name == "tcp" {
				for _, f := range pr.Fields {
					if f.Name == "tcp.stream" {
						tcpStream = f.Show
					}
				}
			}
			if pr.Name != "http2" {
				continue
			}
			for _, fr := range pr.Fields {
				if fr.Name != "http2.stream" {
					continue
				}
				var id, typ string
				var hdrs [][2]string
				var walk func(fs []pdmlField)
				walk = func(fs []pdmlField) {
					for _, f := range fs {
						switch f.Name {
						case "http2.streamid":
							id = f.Show
						case "http2.type":
							typ = f.Show
						case "http2.header":
							var n, v string
							for _, c := range f.Fields {
								switch c.Name {
								case "http2.header.name":
									n = c.Show
								case "http2.header.value":
									v = c.Show
								}
							}
							hdrs = append(hdrs, [2]string{n, v})
							continue
						}
						walk(f.Fields)
					}
				}
				walk(fr.Fields)
				if typ != "1" || id == "" { // HEADERS
					continue
				}
				k := tcpStream + "/" + id
				s := streams[k]
				if s == nil {
					s = &h2s{order: len(order)}
					streams[k] = s
					order = append(order, k)
				}
				for _, h := range hdrs {
					switch h[0] {
					case ":method":
						s.method = h[1]
					case ":path":
						s.path = h[1]
					case ":status":
						if s.status == "" || strings.HasPrefix(s.status, "1") {
							s.status = h[1]
						}
					case "grpc-status":
						s.grpcStatus = h[1]
					}
				}
			}
		}
	}
	var tuples []string
	for _, k := range order {
		s := streams[k]
		if s.method == "" || s.status == "" {
			continue
		}
		tcp, _, _ := strings.Cut(k, "/")
		x := fmt.Sprintf("%s %s %s %s", tcp, s.method, s.path, s.status)
		if s.grpcStatus != "" {
			x += " grpc-status=" + s.grpcStatus
		}
		tuples = append(tuples, x)
	}
	return tuples
}

// checkH2Details checks bodies, headers, the upgrade and multiplexing.
func checkH2Details(t *testing.T, entries []*dissect.Entry) {
	seen := map[string]bool{}
	perStream := map[uint64]int{}
	for _, e := range entries {
		h := e.HTTP
		if h == nil || e.Protocol.Name != "http2" {
			continue
		}
		perStream[e.StreamID]++
		r, a := &h.Request, &h.Response
		switch r.Path {
		case "/echo":
			seen["post"] = seen["post"] || r.Method == "POST" && r.BodySize == 20_000 && a.BodySize == 20_000
		case "/big":
			seen["big"] = seen["big"] || a.BodySize == 100_000 && len(r.Cookies) == 1 && r.Cookies[0].Value == "abc"
		case "/status/404":
			seen["headers"] = seen["headers"] || a.Headers.Get("x-kflcap") == "h2" && r.Host == "10.99.0.2:8082" &&
				r.QueryString[0] == (dissect.KeyValue{Name: "q", Value: "404"}) && r.Headers.Get("user-agent") != ""
		case "/status/202":
			seen["upgrade"] = seen["upgrade"] || a.Status == 202 && e.Dst.Port == 8080
		}
		if e.Dst.Port != 8082 && e.Dst.Port != 8080 {
			t.Errorf("entry towards %v", e.Dst)
		}
	}
	for _, k := range []string{"post", "big", "headers", "upgrade"} {
		if !seen[k] {
			t.Errorf("%s: no entry or wrong", k)
		}
	}
	multi := 0
	for _, n := range perStream {
		multi = max(multi, n)
	}
	if multi < 10 {
		t.Errorf("expected a connection with 10 streams: %v", perStream)
	}
}

// TestHTTP2CommittedCaptures checks the committed captures without root,
// and the same captures cut at several points as if the capture started
// mid-connection: streams whose headers were missed, or whose headers
// refer to HPACK entries that were not seen, are partial, never wrong.
func TestHTTP2CommittedCaptures(t *testing.T) {
	full := map[string]bool{}
	for _, name := range []string{"testdata/http2.pcap", "testdata/grpc.pcap"} {
		entries, _ := dissectFile(t, name, dissect.Config{})
		diffSets(t, name, h2Tuples(entries), tsharkH2Tuples(t, name))
		for _, e := range entries {
			if e.HTTP != nil && e.HTTP.HasResponse {
				full[h2Key(e)] = true
			}
		}
		if name == "testdata/grpc.pcap" {
			checkGRPCDetails(t, entries)
		} else {
			checkH2Details(t, entries)
		}
		pkts, lt := loadPcap(t, name)
		for _, cut := range []int{5, 9, 14, 20, 33} {
			if cut >= len(pkts) {
				continue
			}
			entries, _ := dissectFile(t, writePcap(t, pkts[cut:], lt), dissect.Config{})
			partial := 0
			for _, e := range entries {
				if e.HTTP == nil || e.Protocol.Version != "2.0" {
					continue
				}
				if e.HTTP.Partial {
					partial++
					continue
				}
				if e.HTTP.HasResponse && !full[h2Key(e)] {
					t.Errorf("%s from packet %d: wrong entry %s", name, cut, h2Key(e))
				}
			}
			t.Logf("%s from packet %d: %d entries, %d partial", name, cut, len(entries), partial)
		}
	}
}

func h2Key(e *dissect.Entry) string {
	k := fmt.Sprintf("%s %s %s %d %d/%d", e.HTTP.Request.Method, e.HTTP.Request.URL, e.HTTP.Request.Host,
		e.HTTP.Response.Status, e.HTTP.Request.BodySize, e.HTTP.Response.BodySize)
	if g := e.GRPC; g != nil {
		k += fmt.Sprintf(" %s/%s %d %q", g.Service, g.Method, g.Status, g.Message)
	}
	return k
}
