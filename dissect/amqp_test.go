package dissect_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// amqpTraffic runs rabbitmq-server in B and the amqp091-go client in A:
// declare an exchange and a queue, bind, publish with properties, consume,
// get, and provoke a channel error (a passive declare of a missing queue).
func amqpTraffic(t *testing.T, p *netnstest.Pair) {
	const server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	netnstest.RequireTool(t, server, "sh")
	dir := t.TempDir()
	// guest may log in only over loopback by default.
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte("loopback_users = none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The Erlang VM and epmd outlive the rabbitmq-server script: end every
	// process of the namespace (all this test's) before it is deleted.
	t.Cleanup(func() {
		out, _ := exec.Command("ip", "netns", "pids", p.B).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// From dir: an Erlang node killed at cleanup leaves MnesiaCore dumps
	// in its working directory.
	netnstest.Start(t, p.B, "sh", "-c", `cd "$0" && exec env HOME="$0" RABBITMQ_NODENAME=rabbit@localhost \
		RABBITMQ_MNESIA_BASE="$0/mnesia" RABBITMQ_LOG_BASE="$0/log" RABBITMQ_CONFIG_FILE="$0/rabbitmq" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$0/plugins" RABBITMQ_PID_FILE="$0/pid" "$1"`, dir, server)
	// RabbitMQ boots in 5 s on a quiet machine, 25 s on a busy one: more
	// than WaitListening waits.
	netnstest.WaitListeningFor(t, 90*time.Second, p.B, "tcp", 5672)
	conn, err := amqp.DialConfig("amqp://guest:guest@"+p.IPB+":5672/", amqp.Config{
		Dial: func(network, addr string) (c net.Conn, err error) {
			inNetns(t, p.A, func() error {
				c, err = net.DialTimeout(network, addr, 10*time.Second)
				return nil
			})
			return c, err
		}})
	if err != nil {
		t.Fatalf("dial rabbitmq: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare("orders", "direct", false, true, false, false, nil))
	q, err := ch.QueueDeclare("orders.eu", false, true, false, false, nil)
	must(err)
	must(ch.QueueBind(q.Name, "eu", "orders", false, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 5 {
		must(ch.PublishWithContext(ctx, "orders", "eu", false, false, amqp.Publishing{
			ContentType: "application/json", CorrelationId: fmt.Sprint("c", i), MessageId: fmt.Sprint("m", i),
			DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf(`{"order":%d,"pad":%q}`, i, strings.Repeat("x", 200))),
		}))
	}
	msgs, err := ch.Consume(q.Name, "kflcap-consumer", true, false, false, false, nil)
	must(err)
	for range 4 {
		select {
		case <-msgs:
		case <-ctx.Done():
			t.Fatal("consume: timeout")
		}
	}
	// Passive declare of a missing queue: the server closes the channel (404).
	ch2, err := conn.Channel()
	must(err)
	if _, err := ch2.QueueDeclarePassive("no-such-queue", false, false, false, false, nil); err == nil {
		t.Fatal("passive declare of a missing queue succeeded")
	}
	must(ch.Close())
}

func TestAMQPAgainstTshark(t *testing.T) {
	path, entries, st := captureClean(t, "amqp", func(p *netnstest.Pair) { amqpTraffic(t, p) })
	checkAMQPAgainstTshark(t, path, entries)
	t.Logf("stats %+v", st)
	checkAMQPDetails(t, entries)
}

// checkAMQPAgainstTshark compares (channel, method, exchange, routing key)
// of every method frame, the -ok answers kflcap pairs included.
func checkAMQPAgainstTshark(t *testing.T, path string, entries []*dissect.Entry) {
	var got, want []string
	for _, e := range entries {
		x := e.AMQP
		if x == nil {
			continue
		}
		got = append(got, fmt.Sprintf("%d %s %s %s", x.Channel, x.Method, x.Exchange, x.RoutingKey))
		if x.HasResponse {
			got = append(got, fmt.Sprintf("%d %s  ", x.Channel, x.Response))
		}
	}
	const sep = "\x1f"
	for _, r := range tsharkAgg(t, path, "amqp.type == 1", sep, "amqp.channel", "amqp.method.class", "amqp.method.method",
		"amqp.method.arguments.exchange", "amqp.method.arguments.routing_key") {
		chs, classes, methods := strings.Split(r[0], sep), strings.Split(r[1], sep), strings.Split(r[2], sep)
		exs, rks := strings.Split(r[3], sep), strings.Split(r[4], sep)
		ei, ri := 0, 0
		for i := range methods {
			name := amqpName(classes[min(i, len(classes)-1)], methods[i])
			ex, rk := "", ""
			switch name {
			case "basic.publish", "basic.deliver", "basic.return", "basic.get-ok", "queue.bind", "queue.unbind":
				if ri < len(rks) {
					rk = rks[ri]
				}
				ri++
				fallthrough
			case "exchange.declare", "exchange.delete":
				if ei < len(exs) {
					ex = exs[ei]
				}
				ei++
			}
			want = append(want, fmt.Sprintf("%s %s %s %s", chs[min(i, len(chs)-1)], name, ex, rk))
		}
	}
	if len(want) < 20 {
		t.Fatalf("tshark saw only %d AMQP methods", len(want))
	}
	// kflcap's -ok answers carry no arguments.
	for i, w := range want {
		if strings.HasSuffix(strings.Fields(w)[1], "-ok") {
			want[i] = strings.Join(strings.Fields(w)[:2], " ") + "  "
		}
	}
	diffSets(t, "AMQP methods (channel, method, exchange, routing key)", got, want)
	t.Logf("%d AMQP methods equal to tshark's", len(got))
}

// amqpName maps tshark's numeric class and method ids to the
// specification's names.
func amqpName(class, method string) string {
	c, _ := strconv.Atoi(class)
	m, _ := strconv.Atoi(method)
	if n := dissect.AMQPMethodName(uint16(c), uint16(m)); n != "" {
		return n
	}
	return class + "." + method
}

func checkAMQPDetails(t *testing.T, entries []*dissect.Entry) {
	seen := map[string]int{}
	for _, e := range entries {
		x := e.AMQP
		if x == nil {
			continue
		}
		seen[x.Method]++
		if e.Dst.Port != 5672 {
			t.Errorf("entry towards %v", e.Dst)
		}
		switch x.Method {
		case "basic.publish":
			if x.Exchange != "orders" || x.RoutingKey != "eu" || x.ContentType != "application/json" || x.DeliveryMode != 2 ||
				!strings.HasPrefix(x.CorrelationID, "c") || x.BodySize < 200 || x.FromServer {
				t.Errorf("publish %+v", x)
			}
		case "basic.deliver":
			if x.Exchange != "orders" || x.RoutingKey != "eu" || x.ConsumerTag != "kflcap-consumer" || !x.FromServer || x.BodySize < 200 {
				t.Errorf("deliver %+v", x)
			}
		case "queue.declare":
			if x.Queue != "orders.eu" && x.Queue != "no-such-queue" || !x.HasResponse && x.Queue == "orders.eu" {
				t.Errorf("queue.declare %+v", x)
			}
		case "channel.close":
			if x.FromServer && x.ReplyCode != 404 {
				t.Errorf("channel.close %+v", x)
			}
		}
	}
	if seen["basic.publish"] != 5 || seen["basic.deliver"] < 4 || seen["queue.bind"] != 1 || seen["channel.close"] == 0 {
		t.Errorf("methods: %v", seen)
	}
}

// TestAMQPCommittedCapture repeats the checks on the committed capture.
func TestAMQPCommittedCapture(t *testing.T) {
	entries, _ := dissectFile(t, "testdata/amqp.pcap", dissect.Config{})
	checkAMQPDetails(t, entries)
	checkAMQPAgainstTshark(t, "testdata/amqp.pcap", entries)
}
