/*
 * reference_server: the machine's latency floor for bench_resolve_http.py.
 *
 * An HTTP/1.1 keep-alive server as simple as a server can be: PROCESSES processes, each one
 * thread with its own epoll loop and its own listening socket (SO_REUSEPORT: the kernel spreads
 * new connections over them by hash, as over gunicorn's workers with
 * controlplane/gunicorn_conf.py). Every request is read whole (headers, then Content-Length bytes of
 * body), then the process spends BURN_US microseconds of its own CPU time and answers
 * `{"ok": true}`. No locks, no threads to hand a request to, no interpreter: what its latency
 * shows at a given load is what the machine (cores, scheduler, hypervisor, the load generator
 * beside it) leaves to any server with that per-request CPU cost.
 *
 *   reference_server PORT PROCESSES BURN_US
 *
 * Listens on 127.0.0.1:PORT; runs until killed (children die with the first process).
 * Built by bench/_load.py with the machine's C compiler; not part of the product.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER 65536

typedef struct {
    int fd;
    size_t len;
    char buf[BUFFER];
} Conn;

static const char ANSWER[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\": true}";

static void die(const char *what) {
    perror(what);
    exit(2);
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spend `seconds` of this thread's CPU time (time spent preempted does not count). */
static void burn(double seconds) {
    double until = cpu_seconds() + seconds;
    volatile unsigned long spin = 0;
    while (cpu_seconds() < until) spin++;
}

static void drop(Conn *c) {
    close(c->fd);
    free(c);
}

/* Answer every complete request in the buffer; returns -1 when the connection must close. */
static int serve(Conn *c, double burn_seconds) {
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end == NULL) return c->len < BUFFER ? 0 : -1;
        size_t head = (size_t)(end - c->buf) + 4;
        size_t body = 0;
        for (char *line = c->buf; line < end; line = strstr(line, "\r\n") + 2) {
            if (strncasecmp(line, "Content-Length:", 15) == 0) body = strtoul(line + 15, NULL, 10);
        }
        if (head + body > BUFFER) return -1;
        if (c->len < head + body) return 0;
        burn(burn_seconds);
        if (write(c->fd, ANSWER, sizeof ANSWER - 1) != (ssize_t)(sizeof ANSWER - 1)) return -1;
        memmove(c->buf, c->buf + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: reference_server PORT PROCESSES BURN_US\n");
        return 2;
    }
    int port = atoi(argv[1]), processes = atoi(argv[2]);
    double burn_seconds = atof(argv[3]) / 1e6;
    int one = 1;
    pid_t parent = getpid();
    for (int n = 1; n < processes; n++) {
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) return 0;
            break;
        }
    }

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (listener < 0) die("socket");
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0) die("bind");
    if (listen(listener, 2048) < 0) die("listen");
    int epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event accept_event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &accept_event) < 0) die("epoll_ctl");
    struct epoll_event events[64];
    for (;;) {
        int ready = epoll_wait(epfd, events, 64, -1);
        for (int i = 0; i < ready; i++) {
            Conn *c = events[i].data.ptr;
            if (c == NULL) {
                int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0) continue;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                if (c == NULL) die("calloc");
                c->fd = fd;
                struct epoll_event read_event = {.events = EPOLLIN, .data.ptr = c};
                if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &read_event) < 0) die("epoll_ctl");
                continue;
            }
            ssize_t got = read(c->fd, c->buf + c->len, BUFFER - c->len);
            if (got <= 0) {
                drop(c);
                continue;
            }
            c->len += (size_t)got;
            if (serve(c, burn_seconds) < 0) drop(c);
        }
    }
}
