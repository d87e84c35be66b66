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

// The largest snaplen (tcpdump's maximum).
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

// Emit record_hdr's BTF for bpf2go's Go type.
const struct record_hdr *unused_record_hdr __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24); // resized at load (capture.ringBufferBytes)
} kflcap_events SEC(".maps");

// The link layer of each interface, set by user space at attach: 1 when
// packets start with an Ethernet header, 0 when they start with the IP
// header (tun, wireguard, ipip). Missing: Ethernet.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} kflcap_ifcfg SEC(".maps");

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
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
		return -1;
	l->sport = bpf_ntohs(ports[0]);
	l->dport = bpf_ntohs(ports[1]);
	return 0;
}

// l3 finds the network header in the packet's bytes (the bytes a record
// holds, so the prefilter judges what would be written): after the
// Ethernet header and up to two VLAN tags on Ethernet interfaces, at 0 on
// L3 interfaces. It returns the ethertype and sets *off, or returns 0.
static __always_inline __u16 l3(struct __sk_buff *skb, __u32 *off)
{
	__u32 ifindex = skb->ifindex;
	__u8 *eth = bpf_map_lookup_elem(&kflcap_ifcfg, &ifindex);
	if (eth && *eth == 0) {
		__u8 v;
		if (bpf_skb_load_bytes(skb, 0, &v, 1))
			return 0;
		*off = 0;
		if (v >> 4 == 4)
			return ETH_P_IP;
		if (v >> 4 == 6)
			return ETH_P_IPV6;
		return 0;
	}
	__u16 type;
	__u32 o = 12;
#pragma unroll
	for (int i = 0; i < 3; i++) {
		if (bpf_skb_load_bytes(skb, o, &type, 2))
			return 0;
		type = bpf_ntohs(type);
		o += 2;
		if (type != ETH_P_8021Q && type != ETH_P_8021AD)
			break;
		o += 2; // the tag's TCI; the next ethertype follows
	}
	*off = o;
	return type;
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
	__u32 off = 0;
	__u16 type = l3(skb, &off);

	if (type == ETH_P_IP) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
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
			if (load_ports(skb, off + (__u32)ip.ihl * 4, &l))
				return 0;
			return port_ok(&l);
		}
		return 1;
	}

	if (type == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)))
			return 0;
		__u8 next = ip6.nexthdr;
		off += sizeof(ip6);
		// Walk a bounded number of extension headers. A longer chain is
		// judged by the last header seen: an unknown protocol.
#pragma unroll
		for (int i = 0; i < 6; i++) {
			__u8 ext[8];
			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
			    next != IPPROTO_FRAGMENT && next != IPPROTO_AH)
				break;
			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
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

#define HDR sizeof(struct record_hdr)

// Records are reserved in the ring in size classes and the packet is
// copied straight into the reservation: one copy, where a scratch buffer
// plus bpf_ringbuf_output costs two (64 KiB each for a GSO super-frame).
// bpf_ringbuf_reserve needs a constant size, hence the classes; a record
// wastes at most a third of its class (less for the common sizes). The
// record's cap_len says how much of the class is packet.
#define TRY_CLASS(N)                                                                               \
	if (len <= (N)) {                                                                          \
		void *r = bpf_ringbuf_reserve(&kflcap_events, HDR + (N), 0);                       \
		if (!r) {                                                                          \
			c->ring_drops++;                                                           \
			return;                                                                    \
		}                                                                                  \
		__u64 n = len;                                                                     \
		/* Re-check on the register passed: clang tests a copy otherwise. */            \
		asm volatile("" : "+r"(n));                                                        \
		if (n < 1 || n > (N) || bpf_skb_load_bytes(skb, 0, r + HDR, n)) {                  \
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);                                  \
			c->copy_errors++;                                                          \
			return;                                                                    \
		}                                                                                  \
		struct record_hdr *h = r;                                                          \
		h->ts_boot_ns = now;                                                               \
		h->wire_len = skb->len;                                                            \
		h->cap_len = len;                                                                  \
		h->ifindex = skb->ifindex;                                                         \
		h->direction = dir;                                                                \
		h->_pad[0] = h->_pad[1] = h->_pad[2] = 0;                                          \
		bpf_ringbuf_submit(r, wake);                                                       \
		c->delivered++;                                                                    \
		return;                                                                            \
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

	// A 64-bit length, bounded to (0, MAX_SNAPLEN], is what the verifier
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
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 wake = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&kflcap_events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		wake = BPF_RB_FORCE_WAKEUP;

	TRY_CLASS(64)
	TRY_CLASS(96)
	TRY_CLASS(128)
	TRY_CLASS(192)
	TRY_CLASS(256)
	TRY_CLASS(384)
	TRY_CLASS(512)
	TRY_CLASS(768)
	TRY_CLASS(1024)
	TRY_CLASS(1536)
	TRY_CLASS(2048)
	TRY_CLASS(3072)
	TRY_CLASS(4096)
	TRY_CLASS(6144)
	TRY_CLASS(9216)
	TRY_CLASS(16384)
	TRY_CLASS(24576)
	TRY_CLASS(32768)
	TRY_CLASS(49152)
	TRY_CLASS(65536)
	TRY_CLASS(98304)
	TRY_CLASS(131072)
	TRY_CLASS(196608)
	TRY_CLASS(MAX_SNAPLEN)
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
