"""The network forwarder: the first process of an install command in the sandbox. It listens on
the sandbox's own loopback (where HTTP_PROXY points) and passes each connection to the runner's
index proxy through a Unix socket, the only way out of the sandbox's network namespace. Its
threads are the sandbox's, bounded by its process limit."""
import socket
import subprocess
import threading


def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main(args):
    path, port, separator, cmd = args[0], int(args[1]), args[2], args[3:]
    assert separator == "--"
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)

    def serve():
        while True:
            client, _ = server.accept()
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(path)
            except OSError:
                client.close()
                upstream.close()
                continue
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return subprocess.call(cmd)
