// Command kflcap is a packet capture engine: eBPF capture, L7 dissection, KFL
// stream selection, sealed pcap repositories. See `kflcap help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand. run gets the arguments after the subcommand's
// name; it returns a usageError for bad usage (exit 2) and any other error for
// a runtime failure (exit 1).
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what every subcommand gets from main.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

// commands is filled by init functions in the subcommands' files.
var commands = map[string]command{}

func register(name string, c command) { commands[name] = c }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// KFLCAP_CPUPROFILE=FILE writes a CPU profile of the run (for
	// benchmarks and performance bugs: go tool pprof FILE).
	if path := os.Getenv("KFLCAP_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	stop()
	os.Exit(code)
}

// run runs the command args[0] names and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2 // no command is bad usage; asking for help is not
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kflcap: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	err := c.run(ctx, &env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, nil))}, args[1:])
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "kflcap: %s: %v\n", args[0], err)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "kflcap — eBPF packet capture with KFL stream selection")
	fmt.Fprintln(w, "\nUsage: kflcap COMMAND [flags] [args]\n\nCommands:")
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'kflcap COMMAND --help' for a command's flags and examples.")
}

func init() { register("version", command{summary: "print the version", run: runVersion}) }

func runVersion(_ context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usageErrorf("version takes no arguments")
	}
	_, err := fmt.Fprintln(e.stdout, "kflcap", version)
	return err
}
