# Sends DNS queries to SERVER:53 from a new socket each (a new UDP flow per
# query) for SECONDS seconds, reading each answer. Bounded in time; prints
# the number of queries. Usage: dnsload.py SERVER SECONDS
import socket, struct, sys, time

server, seconds = sys.argv[1], float(sys.argv[2])

def query(i):
    name = b"".join(bytes([len(p)]) + p for p in (b"q%d" % i, b"shop", b"example", b"test"))
    return struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + b"\0" + struct.pack("!HH", 1, 1)

end, n = time.time() + seconds, 0
while time.time() < end:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.sendto(query(n), (server, 53))
    try:
        s.recv(512)
    except socket.timeout:
        pass
    s.close()
    n += 1
print(n, flush=True)
