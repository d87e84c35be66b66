package bpf

// The generated capture_bpfel.go/.o are committed; `make generate` rebuilds
// them with Debian's clang 14 and CI checks that the result is identical.
//go:generate go tool bpf2go -cc clang -strip llvm-strip -target bpfel -type record_hdr -type counters -type if_key -type lpm4 -type lpm6 capture capture.c -- -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
