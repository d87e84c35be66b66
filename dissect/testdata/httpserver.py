# A small HTTP/1.1 server for the dissector's differential tests: fixed
# paths produce the framings the parser must handle.
import gzip, socket, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if code not in (204, 304) and code >= 200:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code not in (204, 304):
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        p = self.path.split("?")[0]
        if p.startswith("/status/"):
            code = int(p.split("/")[2])
            hdrs = [("Location", "/status/200")] if 300 <= code < 400 else []
            self.send(code, ("status %d\n" % code).encode(), hdrs)
        elif p == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world\n" * 50):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif p == "/gzip":
            body = gzip.compress(b"compressed body " * 100)
            self.send(200, body, [("Content-Encoding", "gzip"), ("Content-Type", "text/plain")])
        elif p == "/close":
            # HTTP/1.0-style: no length, the body ends with the connection.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until close\n" * 20)
            self.close_connection = True
        else:
            self.send(200, b"ok\n", [("Set-Cookie", "s=1")])

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.send(201, body)

class S(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

S(("::", int(sys.argv[1])), H).serve_forever()
