# HTTP/1.1 server with keep-alive: GET /status/NNN answers with status NNN
# and a small body; anything else answers 200. Usage: statusserver.py ADDR PORT
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        code = 200
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
        body = ("status %d for %s\n" % (code, self.path)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
