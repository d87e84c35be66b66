// Command upload compares kflcap's S3 delivery (the agent's outbox and S3
// sink, progress log included) with the AWS CLI copying the same files to
// the same MinIO on loopback, in the same run: one 1 GiB archive, then
// 1,000 small ones. Each side runs as a child process so that its CPU time
// and peak RSS are measured the same way (wait4's rusage).
//
//	go run ./bench/upload [-dir /tmp/kflcap-bench-upload] [-small 1000] [-small-size 65536] [-runs 3]
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/upload"
)

const (
	accessKey = "kflcap-bench"
	secretKey = "kflcap-bench-secret"
)

func main() {
	child := flag.String("child", "", "internal: run kflcap's side on -src into -bucket")
	src := flag.String("src", "", "internal: outbox directory")
	bucket := flag.String("bucket", "", "internal: bucket")
	endpoint := flag.String("endpoint", "", "internal: MinIO endpoint")
	dir := flag.String("dir", "/tmp/kflcap-bench-upload", "work directory (files are generated once and kept)")
	bigSize := flag.Int64("big", 1<<30, "size of the big archive in bytes")
	small := flag.Int("small", 1000, "number of small archives")
	smallSize := flag.Int("small-size", 64<<10, "payload bytes of each small archive")
	runs := flag.Int("runs", 1, "runs of each measurement (the best is kept)")
	out := flag.String("out", "", "also write the Markdown table to this file")
	conc := flag.Int("concurrency", 0, "also measure the S3 sink with this many concurrent deliveries (what a concurrent outbox would do); 0: skip")
	flag.Parse()
	if *child != "" {
		if err := runKflcap(*src, *bucket, *endpoint, *conc); err != nil {
			fmt.Fprintln(os.Stderr, "kflcap side:", err)
			os.Exit(1)
		}
		return
	}
	if err := bench(*dir, *bigSize, *small, *smallSize, *runs, *conc, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/upload:", err)
		os.Exit(1)
	}
}

// runKflcap delivers every archive in src to bucket the way the agent does
// (conc 0), or with conc deliveries at a time straight to the sink.
func runKflcap(src, bucket, endpoint string, conc int) error {
	ctx := context.Background()
	sink, err := upload.NewS3Sink(ctx, upload.S3Options{
		Bucket: bucket, Endpoint: endpoint, AccessKeyID: accessKey, SecretAccessKey: secretKey, Prefix: "bench_127.0.0.1",
	})
	if err != nil {
		return err
	}
	if conc > 0 {
		return concurrent(ctx, sink, src, conc)
	}
	ob, err := upload.NewOutbox(src, []upload.Sink{sink}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	failed := 0
	ob.OnDelivery = func(d upload.Delivery) {
		if d.Err != nil {
			failed++
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if !ob.Drain(dctx) || failed > 0 {
		return fmt.Errorf("not drained: %d pending, %d failed attempts", ob.Pending(), failed)
	}
	return nil
}

func concurrent(ctx context.Context, sink *upload.S3Sink, src string, conc int) error {
	names, _, err := list(src)
	if err != nil {
		return err
	}
	work := make(chan string)
	errs := make(chan error, len(names))
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				a, err := upload.ReadArchive(ctx, filepath.Join(src, n))
				if err == nil {
					_, err = sink.Deliver(ctx, a)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

type result struct {
	wall   time.Duration
	cpu    time.Duration
	maxRSS int64 // bytes
}

func measure(name string, args []string, env []string) (result, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return result{wall: wall, cpu: cpu, maxRSS: ru.Maxrss << 10}, nil
}

func bench(dir string, bigSize int64, small, smallSize, runs, conc int, out string) error {
	bigDir, smallDir := filepath.Join(dir, "big"), filepath.Join(dir, "small")
	if err := generate(bigDir, 1, bigSize); err != nil {
		return err
	}
	if err := generate(smallDir, small, int64(smallSize)); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	minio, stop, endpoint, err := startMinIO(dir)
	if err != nil {
		return err
	}
	defer stop()
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")})
	cli := "/usr/bin/aws"
	if _, err := os.Stat(cli); err != nil {
		cli = "aws"
	}
	cliVersion, _ := exec.Command(cli, "--version").CombinedOutput()
	cliEnv := []string{"AWS_ACCESS_KEY_ID=" + accessKey, "AWS_SECRET_ACCESS_KEY=" + secretKey, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_REGION=us-east-1"}

	type row struct {
		set, tool      string
		bytes          int64
		files          int
		best           result
		wantObjects    int
		bucket, prefix string
	}
	var rows []row
	for _, set := range []struct {
		name, dir string
	}{{"1 × 1 GiB", bigDir}, {fmt.Sprintf("%d × %s", small, human(int64(smallSize))), smallDir}} {
		files, total, err := list(set.dir)
		if err != nil {
			return err
		}
		tools := []string{"kflcap", "aws s3 cp"}
		if conc > 0 && len(files) > 1 {
			tools = append(tools, fmt.Sprintf("kflcap sink ×%d", conc))
		}
		for _, tool := range tools {
			var best result
			var bkt string
			for r := range runs {
				bkt = fmt.Sprintf("b-%d-%d", time.Now().UnixNano(), r)
				if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &bkt}); err != nil {
					return fmt.Errorf("create bucket: %w", err)
				}
				var res result
				if strings.HasPrefix(tool, "kflcap") {
					outbox := filepath.Join(dir, "outbox")
					os.RemoveAll(outbox)
					os.MkdirAll(outbox, 0o755)
					for _, f := range files {
						if err := os.Link(filepath.Join(set.dir, f), filepath.Join(outbox, f)); err != nil {
							return err
						}
					}
					args := []string{"-child", "kflcap", "-src", outbox, "-bucket", bkt, "-endpoint", endpoint}
					if tool != "kflcap" {
						args = append(args, "-concurrency", fmt.Sprint(conc))
					}
					res, err = measure(self, args, nil)
				} else {
					args := []string{"--endpoint-url", endpoint, "s3", "cp", "--only-show-errors"}
					if len(files) == 1 {
						args = append(args, filepath.Join(set.dir, files[0]), "s3://"+bkt+"/bench_127.0.0.1/"+files[0])
					} else {
						args = append(args, "--recursive", set.dir+"/", "s3://"+bkt+"/bench_127.0.0.1/")
					}
					res, err = measure(cli, args, cliEnv)
				}
				if err != nil {
					return err
				}
				n, err := countObjects(client, bkt)
				if err != nil {
					return err
				}
				want := len(files)
				if strings.HasPrefix(tool, "kflcap") {
					want++ // the progress log
				}
				if n != want {
					return fmt.Errorf("%s %s: %d objects in the bucket, want %d", tool, set.name, n, want)
				}
				if r == 0 || res.wall < best.wall {
					best = res
				}
			}
			rows = append(rows, row{set: set.name, tool: tool, bytes: total, files: len(files), best: best, bucket: bkt})
			fmt.Fprintf(os.Stderr, "%-14s %-10s %8.1f MB/s  %6.1f files/s  wall %6.2fs  cpu %6.2fs  rss %s\n", set.name, tool,
				float64(total)/best.wall.Seconds()/1e6, float64(len(files))/best.wall.Seconds(), best.wall.Seconds(), best.cpu.Seconds(), human(best.maxRSS))
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "MinIO %s on 127.0.0.1 (same machine), %s, best of %d run(s).\n\n", filepath.Base(filepath.Dir(minio)), strings.TrimSpace(string(cliVersion)), runs)
	fmt.Fprintf(&md, "| set | tool | wall | throughput | files/s | CPU (user+sys) | peak RSS |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&md, "| %s | %s | %.2f s | %.1f MB/s | %.1f | %.2f s | %s |\n", r.set, r.tool, r.best.wall.Seconds(),
			float64(r.bytes)/r.best.wall.Seconds()/1e6, float64(r.files)/r.best.wall.Seconds(), r.best.cpu.Seconds(), human(r.best.maxRSS))
	}
	for i := range rows {
		if rows[i].tool != "aws s3 cp" {
			continue
		}
		for _, r := range rows {
			if r.set == rows[i].set && r.tool != rows[i].tool {
				fmt.Fprintf(&md, "\n%s, %s/CLI: throughput %.2fx, CPU %.2fx, RSS %.2fx", r.set, r.tool,
					rows[i].best.wall.Seconds()/r.best.wall.Seconds(), r.best.cpu.Seconds()/rows[i].best.cpu.Seconds(),
					float64(r.best.maxRSS)/float64(rows[i].best.maxRSS))
			}
		}
	}
	md.WriteString("\n")
	fmt.Print(md.String())
	if out != "" {
		return os.WriteFile(out, []byte(md.String()), 0o644)
	}
	return nil
}

func countObjects(c *s3.Client, bucket string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			return 0, err
		}
		n += len(page.Contents)
	}
	return n, nil
}

func list(dir string) ([]string, int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var names []string
	var total int64
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tar.gz") {
			fi, err := e.Info()
			if err != nil {
				return nil, 0, err
			}
			names = append(names, e.Name())
			total += fi.Size()
		}
	}
	return names, total, nil
}

// generate writes n archives shaped like the agent's (content.json first,
// then incompressible payload, as gzip of pcaps nearly is) unless dir
// already holds them.
func generate(dir string, n int, payload int64) error {
	if names, _, err := list(dir); err == nil && len(names) == n {
		return nil
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 1<<20)
	for i := range n {
		name := fmt.Sprintf("kfl_%d_kflcap_%d.tar.gz", i%2, 1700000000+i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		gz, _ := gzip.NewWriterLevel(f, gzip.NoCompression)
		tw := tar.NewWriter(gz)
		content, _ := json.Marshal(repo.Content{KFLIndex: i % 2, KFLQuery: []string{"http and response.status == 500", "dns"}[i%2],
			L4Streams: []string{}, PcapFileName: "1.pcap", Time: time.Unix(int64(1700000000+i), 0).UTC().Format(repo.TimeFormat)})
		tw.WriteHeader(&tar.Header{Name: "content.json", Mode: 0o644, Size: int64(len(content))})
		tw.Write(content)
		tw.WriteHeader(&tar.Header{Name: "1.pcap", Mode: 0o644, Size: payload})
		for left := payload; left > 0; {
			chunk := buf[:min(int64(len(buf)), left)]
			for j := 0; j+8 <= len(chunk); j += 8 {
				binary.LittleEndian.PutUint64(chunk[j:], rng.Uint64())
			}
			if _, err := tw.Write(chunk); err != nil {
				return err
			}
			left -= int64(len(chunk))
		}
		if err := errors.Join(tw.Close(), gz.Close(), f.Close()); err != nil {
			return err
		}
	}
	return nil
}

// startMinIO starts the pinned MinIO (scripts/minio.sh) with a fresh data
// directory on a free loopback port.
func startMinIO(dir string) (bin string, stop func(), endpoint string, err error) {
	outb, err := exec.Command("sh", "scripts/minio.sh").Output()
	if err != nil {
		return "", nil, "", fmt.Errorf("scripts/minio.sh (run from the repository root): %w", err)
	}
	bin = strings.TrimSpace(string(outb))
	data := filepath.Join(dir, "minio-data")
	os.RemoveAll(data)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, data)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+accessKey, "MINIO_ROOT_PASSWORD="+secretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, "", err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(data) }
	endpoint = "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(endpoint + "/minio/health/cluster"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return bin, stop, endpoint, nil
			}
		}
	}
	stop()
	return "", nil, "", errors.New("minio did not become ready")
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
