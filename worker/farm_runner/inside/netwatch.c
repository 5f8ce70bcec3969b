/* The native network watch, preloaded (LD_PRELOAD) into the package's test run: it notes the
 * names native code looks up and the internet addresses it connects or sends to, one line each,
 * in the file FARM_NATIVE_NET names ("lookup NAME", "connect ADDRESS:PORT"; a DNS query to
 * loopback too), and the Unix sockets it finds absent or unserved ("unix PATH"). What Python's
 * own sockets do the probe plugin sees already; this is for what bypasses them: libcurl and
 * c-ares (curl_cffi), a Rust client's getaddrinfo, gRPC's core. The probe plugin reads the lines
 * and decides what they mean (loopback and the sandbox's own names are not the network). Nothing is changed: each call goes on to libc. At most MAX_BYTES are
 * written. Built by host/netwatch.py. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_BYTES (1 << 20)
/* A resolver's query (c-ares in libcurl asks 127.0.0.1:53 where no resolv.conf names a server;
 * no test can serve port 53 in the sandbox): the network, wherever it is sent. */
#define DNS_PORT 53

static void note(const char *kind, const char *what)
{
    const char *path = getenv("FARM_NATIVE_NET");
    char line[320];
    int fd, n;
    if (path == NULL || what == NULL)
        return;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    if (lseek(fd, 0, SEEK_END) < MAX_BYTES) {
        n = snprintf(line, sizeof line, "%s %.250s\n", kind, what);
        if (n > 0 && n < (int)sizeof line && strchr(what, '\n') == NULL)
            (void)!write(fd, line, n);
    }
    close(fd);
}

static void note_address(const struct sockaddr *addr)
{
    char host[INET6_ADDRSTRLEN], what[INET6_ADDRSTRLEN + 16];
    if (addr == NULL)
        return;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (((ntohl(in->sin_addr.s_addr) >> 24) == 127 && ntohs(in->sin_port) != DNS_PORT) ||
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host) == NULL)
            return;
        snprintf(what, sizeof what, "%s:%d", host, ntohs(in->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        if ((IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) && ntohs(in6->sin6_port) != DNS_PORT) ||
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host) == NULL)
            return;
        snprintf(what, sizeof what, "%s:%d", host, ntohs(in6->sin6_port));
    } else {
        return;
    }
    note("connect", what);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    if (real == NULL)
        real = (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
    note("lookup", node);
    return real(node, service, hints, res);
}

struct hostent *gethostbyname(const char *name)
{
    static struct hostent *(*real)(const char *);
    if (real == NULL)
        real = (struct hostent * (*)(const char *)) dlsym(RTLD_NEXT, "gethostbyname");
    note("lookup", name);
    return real(name);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    int rc, saved;
    if (real == NULL)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    note_address(addr);
    rc = real(fd, addr, len);
    /* A Unix socket at an absolute path that is not there or not served ("unix PATH"): a daemon's,
     * perhaps (curl --unix-socket /run/docker.sock); the runner keeps the ones it knows. */
    if (rc != 0 && addr != NULL && addr->sa_family == AF_UNIX && (errno == ENOENT || errno == ECONNREFUSED)) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
        char path[sizeof un->sun_path + 1];
        saved = errno;
        if (len > (socklen_t)offsetof(struct sockaddr_un, sun_path) && un->sun_path[0] == '/') {
            memcpy(path, un->sun_path, sizeof un->sun_path);
            path[sizeof un->sun_path] = 0;
            note("unix", path);
        }
        errno = saved;
    }
    return rc;
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr, socklen_t addrlen)
{
    static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (real == NULL)
        real = (ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "sendto");
    note_address(addr);
    return real(fd, buf, len, flags, addr, addrlen);
}
