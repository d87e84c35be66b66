# Opens tun device argv[1] and answers every ICMP echo request arriving on
# it with an echo reply, so that a raw-IP (L3) interface carries traffic in
# both directions. Runs until killed.
import fcntl, os, struct, sys

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", sys.argv[1].encode(), IFF_TUN | IFF_NO_PI))
print("ready", flush=True)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

while True:
    p = bytearray(os.read(fd, 65536))
    if len(p) < 28 or p[0] >> 4 != 4 or p[9] != 1:
        continue
    ihl = (p[0] & 15) * 4
    if p[ihl] != 8:
        continue
    p[12:16], p[16:20] = p[16:20], p[12:16]
    p[10:12] = b"\0\0"
    p[10:12] = struct.pack("!H", csum(bytes(p[:ihl])))
    p[ihl] = 0
    p[ihl + 2:ihl + 4] = b"\0\0"
    p[ihl + 2:ihl + 4] = struct.pack("!H", csum(bytes(p[ihl:])))
    os.write(fd, bytes(p))
