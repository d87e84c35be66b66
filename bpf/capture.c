//go:build ignore

// kflcap capture programs: TC ingress/egress (TCX or cls_bpf) and a socket
// filter for AF_PACKET. Each copies the packet (up to snaplen) into the
// kflcap_events ring buffer as a variable-length record and never changes the
// packet's fate: TC programs return TC_ACT_UNSPEC ("continue", so later TC
// programs still run) and the socket filter returns 0 (the AF_PACKET socket
// itself queues nothing; it is only the hook).

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// The largest snaplen the scratch buffer holds (tcpdump's maximum).
#define MAX_SNAPLEN 262144

enum direction {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
};

// record_hdr precedes the packet bytes of every ring-buffer record.
struct record_hdr {
	__u64 ts_boot_ns; // bpf_ktime_get_boot_ns() when the hook ran
	__u32 wire_len;   // skb->len: the packet's length on the wire
	__u32 cap_len;    // bytes that follow the header (<= snaplen)
	__u32 ifindex;
	__u8 direction; // enum direction
	__u8 _pad[3];
};

// scratch is one record-sized buffer per CPU. A per-CPU array's values are
// limited to 32 KiB, so it is a plain array indexed by the CPU id; TC and
// socket-filter programs run with preemption/migration disabled, so a CPU's
// slot is never used by two programs at once.
struct scratch {
	struct record_hdr hdr;
	__u8 data[MAX_SNAPLEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); // set to the number of possible CPUs at load
	__type(key, __u32);
	__type(value, struct scratch);
} kflcap_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24); // resized at load (capture.ringBufferBytes)
} kflcap_events SEC(".maps");

// Counters, per CPU and per (ifindex, direction). Invariant, per key:
// seen == filtered + delivered + ring_drops + copy_errors.
struct counters {
	__u64 seen;        // packets that reached the hook
	__u64 filtered;    // rejected by the prefilter (not wanted)
	__u64 delivered;   // records written to the ring buffer
	__u64 ring_drops;  // ring buffer full: lost
	__u64 copy_errors; // bpf_skb_load_bytes failed: lost
	__u64 bytes;       // wire bytes of seen packets
};

struct if_key {
	__u32 ifindex;
	__u32 direction;
};

// User space inserts a key for every interface and direction it attaches
// to, so the hot path only looks up. Packets of an interface without a key
// (it appeared after the insert) count in kflcap_unkeyed.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct if_key);
	__type(value, struct counters);
} kflcap_ifstats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} kflcap_unkeyed SEC(".maps");

// Prefilter. A packet passes when every enabled dimension accepts it:
//   PF_PROTO: its IP protocol is set in kflcap_pf_proto;
//   PF_ADDR:  its source or destination lies in kflcap_pf_ip4/kflcap_pf_ip6;
//   PF_PORT:  its source or destination port is set in kflcap_pf_port, or it
//             is a non-first fragment (no ports to judge).
// With no dimension enabled every packet passes, non-IP ones included; with
// any enabled, non-IP packets are rejected (no query selects them).
#define PF_PROTO 1
#define PF_ADDR 2
#define PF_PORT 4

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); // PF_* bits
} kflcap_pf_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} kflcap_pf_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} kflcap_pf_port SEC(".maps");

struct lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm4);
	__type(value, __u8);
} kflcap_pf_ip4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm6);
	__type(value, __u8);
} kflcap_pf_ip6 SEC(".maps");

// Set at load time.
volatile const __u32 snaplen = 65535;
// Submit without waking the reader until this many bytes wait in the ring;
// the reader's poll deadline picks up a quieter tail.
volatile const __u64 wakeup_bytes = 256 * 1024;

// l4 describes what the prefilter looks at.
struct l4 {
	__u8 proto;
	__u8 nonfirst_frag;
	__u16 sport, dport; // host order
};

static __always_inline int port_ok(struct l4 *l)
{
	if (l->nonfirst_frag)
		return 1;
	if (l->proto != IPPROTO_TCP && l->proto != IPPROTO_UDP && l->proto != IPPROTO_SCTP &&
	    l->proto != IPPROTO_UDPLITE)
		return 0;
	__u32 k = l->sport;
	__u8 *v = bpf_map_lookup_elem(&kflcap_pf_port, &k);
	if (v && *v)
		return 1;
	k = l->dport;
	v = bpf_map_lookup_elem(&kflcap_pf_port, &k);
	return v && *v;
}

static __always_inline int proto_ok(struct l4 *l)
{
	__u32 k = l->proto;
	__u8 *v = bpf_map_lookup_elem(&kflcap_pf_proto, &k);
	return v && *v;
}

static __always_inline int load_ports(struct __sk_buff *skb, __u32 off, struct l4 *l)
{
	__u16 ports[2];
	if (l->nonfirst_frag)
		return 0;
	if (l->proto != IPPROTO_TCP && l->proto != IPPROTO_UDP && l->proto != IPPROTO_SCTP &&
	    l->proto != IPPROTO_UDPLITE)
		return 0;
	if (bpf_skb_load_bytes_relative(skb, off, ports, sizeof(ports), BPF_HDR_START_NET))
		return -1;
	l->sport = bpf_ntohs(ports[0]);
	l->dport = bpf_ntohs(ports[1]);
	return 0;
}

// prefilter returns 1 when the packet should be captured.
static __always_inline int prefilter(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u32 *cfg = bpf_map_lookup_elem(&kflcap_pf_cfg, &zero);
	if (!cfg || *cfg == 0)
		return 1;
	__u32 flags = *cfg;
	struct l4 l = {};

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
			return 0;
		l.proto = ip.protocol;
		l.nonfirst_frag = (bpf_ntohs(ip.frag_off) & 0x1fff) != 0;
		if ((flags & PF_PROTO) && !proto_ok(&l))
			return 0;
		if (flags & PF_ADDR) {
			struct lpm4 k = {.prefixlen = 32};
			__builtin_memcpy(k.addr, &ip.saddr, 4);
			if (!bpf_map_lookup_elem(&kflcap_pf_ip4, &k)) {
				__builtin_memcpy(k.addr, &ip.daddr, 4);
				if (!bpf_map_lookup_elem(&kflcap_pf_ip4, &k))
					return 0;
			}
		}
		if (flags & PF_PORT) {
			if (load_ports(skb, (__u32)ip.ihl * 4, &l))
				return 0;
			return port_ok(&l);
		}
		return 1;
	}

	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
			return 0;
		__u8 next = ip6.nexthdr;
		__u32 off = sizeof(ip6);
		// Walk a bounded number of extension headers. A chain longer than
		// that is judged by its last header seen: unknown protocol.
#pragma unroll
		for (int i = 0; i < 6; i++) {
			__u8 ext[8];
			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
			    next != IPPROTO_FRAGMENT && next != IPPROTO_AH)
				break;
			if (bpf_skb_load_bytes_relative(skb, off, ext, sizeof(ext), BPF_HDR_START_NET))
				return 0;
			if (next == IPPROTO_FRAGMENT) {
				if (((ext[2] << 8 | ext[3]) & 0xfff8) != 0)
					l.nonfirst_frag = 1;
				off += 8;
			} else if (next == IPPROTO_AH) {
				off += ((__u32)ext[1] + 2) * 4;
			} else {
				off += ((__u32)ext[1] + 1) * 8;
			}
			next = ext[0];
		}
		l.proto = next;
		if ((flags & PF_PROTO) && !proto_ok(&l))
			return 0;
		if (flags & PF_ADDR) {
			struct lpm6 k = {.prefixlen = 128};
			__builtin_memcpy(k.addr, &ip6.saddr, 16);
			if (!bpf_map_lookup_elem(&kflcap_pf_ip6, &k)) {
				__builtin_memcpy(k.addr, &ip6.daddr, 16);
				if (!bpf_map_lookup_elem(&kflcap_pf_ip6, &k))
					return 0;
			}
		}
		if (flags & PF_PORT) {
			if (load_ports(skb, off, &l))
				return 0;
			return port_ok(&l);
		}
		return 1;
	}
	return 0;
}

static __always_inline struct counters *counters_for(__u32 ifindex, __u32 dir)
{
	struct if_key key = {.ifindex = ifindex, .direction = dir};
	struct counters *c = bpf_map_lookup_elem(&kflcap_ifstats, &key);
	if (c)
		return c;
	__u32 zero = 0;
	return bpf_map_lookup_elem(&kflcap_unkeyed, &zero);
}

static __always_inline void capture(struct __sk_buff *skb, __u32 dir)
{
	struct counters *c = counters_for(skb->ifindex, dir);
	if (!c)
		return; // cannot happen: kflcap_unkeyed always has its slot
	c->seen++;
	c->bytes += skb->len;

	if (!prefilter(skb)) {
		c->filtered++;
		return;
	}

	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch *s = bpf_map_lookup_elem(&kflcap_scratch, &cpu);
	if (!s) {
		c->copy_errors++;
		return;
	}

	// A 64-bit length, clamped to (0, MAX_SNAPLEN], is what the verifier
	// accepts for bpf_skb_load_bytes with clang 14 and -mcpu=v1 (a 32-bit
	// one fails with "R4 invalid zero-sized read").
	__u64 len = skb->len;
	if (len > snaplen)
		len = snaplen;
	if (len > MAX_SNAPLEN)
		len = MAX_SNAPLEN;
	if (len == 0) {
		c->copy_errors++;
		return;
	}
	if (bpf_skb_load_bytes(skb, 0, s->data, len)) {
		c->copy_errors++;
		return;
	}
	s->hdr.ts_boot_ns = bpf_ktime_get_boot_ns();
	s->hdr.wire_len = skb->len;
	s->hdr.cap_len = len;
	s->hdr.ifindex = skb->ifindex;
	s->hdr.direction = dir;

	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&kflcap_events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&kflcap_events, s, sizeof(struct record_hdr) + len, flags)) {
		c->ring_drops++;
		return;
	}
	c->delivered++;
}

SEC("tc")
int kflcap_tc_in(struct __sk_buff *skb)
{
	capture(skb, DIR_INGRESS);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int kflcap_tc_eg(struct __sk_buff *skb)
{
	capture(skb, DIR_EGRESS);
	return TC_ACT_UNSPEC;
}

// On an AF_PACKET socket the filter sees both directions; pkt_type tells
// them apart. Returning 0 keeps the socket's own queue empty.
SEC("socket")
int kflcap_sock(struct __sk_buff *skb)
{
	// Loopback (ifindex 1 in every netns) shows each packet twice, outgoing
	// then incoming; keep the incoming copy, as tcpdump and the TC backends do.
	if (skb->ifindex == 1 && skb->pkt_type == PACKET_OUTGOING)
		return 0;
	capture(skb, skb->pkt_type == PACKET_OUTGOING ? DIR_EGRESS : DIR_INGRESS);
	return 0;
}
