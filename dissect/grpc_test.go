package dissect_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// rawCodec carries []byte messages: the test service needs no generated
// protobuf code, and the wire is gRPC all the same.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// echoService is kflcap.test.Echo: Say answers "echo: " + the message, or
// fails for "fail" (NotFound) and "bad" (InvalidArgument, a non-ASCII
// message); Chat answers every message twice.
var echoService = grpc.ServiceDesc{
	ServiceName: "kflcap.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Say", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var in []byte
		if err := dec(&in); err != nil {
			return nil, err
		}
		switch string(in) {
		case "fail":
			return nil, status.Error(codes.NotFound, "no such thing: fail")
		case "bad":
			return nil, status.Error(codes.InvalidArgument, "bad ✓ input")
		}
		out := append([]byte("echo: "), in...)
		return &out, nil
	}}},
	Streams: []grpc.StreamDesc{{StreamName: "Chat", ServerStreams: true, ClientStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
		for {
			var m []byte
			err := st.RecvMsg(&m)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			st.SendMsg(&m)
			st.SendMsg(&m)
		}
	}}},
}

// grpcTraffic runs the Echo server (google.golang.org/grpc) in B and a
// client in A: unary calls, two failing ones, a bidirectional stream.
func grpcTraffic(t *testing.T, p *netnstest.Pair) {
	l := listenIn(t, p.B, ":50051")
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	srv.RegisterService(&echoService, struct{}{})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient("passthrough:///"+p.IPB+":50051",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (c net.Conn, err error) {
			inNetns(t, p.A, func() error {
				c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				return nil
			})
			return c, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, msg := range []string{"hello", "world", "fail", "bad", "again"} {
		in, out := []byte(msg), []byte(nil)
		err := conn.Invoke(ctx, "/kflcap.test.Echo/Say", &in, &out)
		if want := msg == "fail" || msg == "bad"; (err != nil) != want {
			t.Fatalf("Say(%q): %v", msg, err)
		}
	}
	st, err := conn.NewStream(ctx, &echoService.Streams[0], "/kflcap.test.Echo/Chat")
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"one", "two", "three"} {
		m := []byte(msg)
		if err := st.SendMsg(&m); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseSend()
	n := 0
	for {
		var m []byte
		if err := st.RecvMsg(&m); err != nil {
			break
		}
		n++
	}
	if n != 6 {
		t.Fatalf("Chat: %d replies, want 6", n)
	}
}

func TestGRPCAgainstTshark(t *testing.T) {
	path, entries, st := captureClean(t, "grpc", func(p *netnstest.Pair) { grpcTraffic(t, p) })
	got, want := h2Tuples(entries), tsharkH2Tuples(t, path)
	if len(want) < 6 {
		t.Fatalf("tshark saw only %d gRPC calls: %q", len(want), want)
	}
	diffSets(t, "gRPC (stream, method, path, status, grpc-status)", got, want)
	t.Logf("%d gRPC calls equal to tshark's; stats %+v", len(got), st)
	checkGRPCDetails(t, entries)
}

func checkGRPCDetails(t *testing.T, entries []*dissect.Entry) {
	seen := map[string]bool{}
	for _, e := range entries {
		g := e.GRPC
		if g == nil {
			continue
		}
		if e.Protocol.Name != "grpc" || g.Service != "kflcap.test.Echo" || !g.HasStatus {
			t.Errorf("gRPC entry %+v %+v", e.Protocol, g)
		}
		switch {
		case g.Method == "Say" && g.Status == 5:
			seen["notfound"] = g.Message == "no such thing: fail" && g.RequestMessages == 1 && g.ResponseMessages == 0
		case g.Method == "Say" && g.Status == 3:
			seen["percent"] = g.Message == "bad ✓ input"
		case g.Method == "Say" && g.Status == 0 && g.RequestMessageBytes == 5:
			seen["ok"] = g.RequestMessages == 1 && g.ResponseMessages == 1 && g.ResponseMessageBytes == 11
		case g.Method == "Chat":
			seen["stream"] = g.Status == 0 && g.RequestMessages == 3 && g.ResponseMessages == 6 && g.ResponseMessageBytes == 2*(3+3+5)
		}
	}
	for _, k := range []string{"notfound", "percent", "ok", "stream"} {
		if !seen[k] {
			t.Errorf("%s: no entry or wrong", k)
		}
	}
}
