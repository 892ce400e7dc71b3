/*
 * openloop: HTTP/1.1 load at a fixed rate, open loop, for latency "at a given load".
 *
 * Request i is due at start + i / rate whatever happened before; its latency runs from that
 * due time to the last byte of its answer, so a stall counts against every request it delays
 * (no coordinated omission). Due requests wait in a queue for a free keep-alive connection.
 * One thread, epoll and a timerfd: it costs the machine a few microseconds per request, so it
 * does not take the CPU the server under test needs (bench/_load.py, in Python, costs ~100x).
 *
 * Every request is HEAD_FILE's bytes (request line and headers, without Content-Length), then
 * Content-Length and the body PREFIX <number> SUFFIX: each request another unit.
 *
 *   openloop HOST PORT RATE SECONDS CONNECTIONS HEAD_FILE PREFIX SUFFIX
 *
 * Prints one line `scheduled answered errors seconds connections` (seconds: the answers' span),
 * then one line per answered
 * request: its latency in microseconds. Answers must carry Content-Length (Django's do).
 * Built by bench/bench_resolve_http.py with the machine's C compiler; not part of the product.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define IN_CAPACITY (1 << 20)
#define DRAIN_SECONDS 10.0

typedef struct {
    int fd;
    int busy;
    int retried;
    long number;
    double due;
    char *out;
    size_t out_len, out_sent;
    char *in;
    size_t in_len;
} Conn;

static struct sockaddr_in address;
static int epfd;
static char *head;
static size_t head_len;
static const char *prefix, *suffix;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void watch(Conn *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) die("epoll_ctl");
}

static void connect_conn(Conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
    watch(c, EPOLLIN, EPOLL_CTL_ADD);
}

static void reconnect(Conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    connect_conn(c);
}

/* Write what is left of the request; wait for EPOLLOUT when the socket is full. */
static int send_rest(Conn *c) {
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
                return 0;
            }
            return -1;
        }
        c->out_sent += (size_t)n;
    }
    watch(c, EPOLLIN, EPOLL_CTL_MOD);
    return 0;
}

static void start_request(Conn *c, long number, double due) {
    char body[512];
    int body_len = snprintf(body, sizeof body, "%sopen-%ld%s", prefix, number, suffix);
    c->out_len = (size_t)snprintf(c->out, head_len + 1024, "%.*sContent-Length: %d\r\n\r\n%s", (int)head_len, head,
                                  body_len, body);
    c->out_sent = 0;
    c->in_len = 0;
    c->busy = 1;
    c->retried = 0;
    c->number = number;
    c->due = due;
    if (send_rest(c) < 0) {
        reconnect(c);
        c->retried = 1;
        if (send_rest(c) < 0) die("send");
    }
}

/* 1 when the answer is complete (status in *status, *close when the server ends the
 * connection), 0 when more bytes are needed. */
static int answer_complete(Conn *c, int *status, int *close_after) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL) return 0;
    size_t header_len = (size_t)(end - c->in) + 4;
    *status = atoi(c->in + 9);
    long length = -1;
    *close_after = 0;
    for (char *line = memchr(c->in, '\n', header_len); line && line < end; line = memchr(line + 1, '\n', end - line)) {
        if (strncasecmp(line + 1, "content-length:", 15) == 0) length = strtol(line + 16, NULL, 10);
        if (strncasecmp(line + 1, "connection: close", 17) == 0) *close_after = 1;
    }
    if (length < 0) {
        fprintf(stderr, "openloop: an answer without Content-Length\n");
        exit(2);
    }
    return c->in_len >= header_len + (size_t)length;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: openloop HOST PORT RATE SECONDS CONNECTIONS HEAD_FILE PREFIX SUFFIX\n");
        return 2;
    }
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &address.sin_addr) != 1) die("inet_pton");
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    int connections = atoi(argv[5]);
    prefix = argv[7];
    suffix = argv[8];
    FILE *file = fopen(argv[6], "rb");
    if (!file) die("head file");
    head = malloc(1 << 16);
    head_len = fread(head, 1, (1 << 16) - 1, file);
    fclose(file);

    long total = (long)(rate * seconds);
    if (rate <= 0 || total <= 0 || connections <= 0) {
        fprintf(stderr, "openloop: RATE, SECONDS and CONNECTIONS must be positive\n");
        return 2;
    }
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    Conn *conns = calloc((size_t)connections, sizeof(Conn));
    /* Free connections in a ring, the longest idle first: load spreads over every connection
     * (and so over the server's worker processes), as a round-robin balancer would. */
    Conn **idle = calloc((size_t)connections, sizeof(Conn *));
    int idle_head = 0, idle_count = 0;
    for (int i = 0; i < connections; i++) {
        conns[i].out = malloc(head_len + 1024);
        conns[i].in = malloc(IN_CAPACITY);
        connect_conn(&conns[i]);
        idle[idle_count++] = &conns[i];
    }
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (timer < 0) die("timerfd_create");
    struct epoll_event timer_event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, timer, &timer_event) < 0) die("epoll_ctl timer");

    uint32_t *latencies = malloc(sizeof(uint32_t) * (size_t)total);
    long answered = 0, errors = 0, next = 0, queued_from = 0;
    double start = now() + 0.01, drain_until = 0, last_answer = start;
    int in_flight = 0;
    struct epoll_event events[256];

    while (next < total || queued_from < next || in_flight > 0) {
        double t = now();
        while (next < total && start + next / rate <= t) next++;
        /* Due requests [queued_from, next) go out on free connections, oldest first. */
        while (queued_from < next && idle_count > 0) {
            Conn *c = idle[idle_head];
            idle_head = (idle_head + 1) % connections;
            idle_count--;
            start_request(c, queued_from, start + queued_from / rate);
            queued_from++;
            in_flight++;
        }
        int timeout_ms = -1;
        if (next < total) {
            double due = start + next / rate;
            struct itimerspec spec = {0};
            spec.it_value.tv_sec = (time_t)due;
            spec.it_value.tv_nsec = (long)((due - (double)(time_t)due) * 1e9);
            if (timerfd_settime(timer, TFD_TIMER_ABSTIME, &spec, NULL) < 0) die("timerfd_settime");
        } else {
            if (drain_until == 0) drain_until = t + DRAIN_SECONDS;
            if (t >= drain_until) break;
            timeout_ms = (int)((drain_until - t) * 1000) + 1;
        }
        int n = epoll_wait(epfd, events, 256, timeout_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            Conn *c = events[i].data.ptr;
            if (c == NULL) {
                uint64_t expirations;
                ssize_t ignored = read(timer, &expirations, sizeof expirations);
                (void)ignored;
                continue;
            }
            if (!c->busy) {
                /* An idle connection the server closed: open it again. */
                char scratch[256];
                if (recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT) <= 0) reconnect(c);
                continue;
            }
            if ((events[i].events & EPOLLOUT) && send_rest(c) < 0) goto lost;
            if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            ssize_t got = recv(c->fd, c->in + c->in_len, IN_CAPACITY - c->in_len, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
            if (got <= 0) goto lost;
            c->in_len += (size_t)got;
            int status, close_after;
            if (!answer_complete(c, &status, &close_after)) continue;
            last_answer = now();
            if (status == 200) {
                latencies[answered++] = (uint32_t)((last_answer - c->due) * 1e6);
            } else {
                errors++;
            }
            c->busy = 0;
            in_flight--;
            if (close_after) reconnect(c);
            idle[(idle_head + idle_count++) % connections] = c;
            continue;
        lost:
            /* The server dropped the connection under a request: send it once more, then count it. */
            if (c->retried) {
                errors++;
                c->busy = 0;
                in_flight--;
                reconnect(c);
                idle[(idle_head + idle_count++) % connections] = c;
            } else {
                long number = c->number;
                double due = c->due;
                reconnect(c);
                start_request(c, number, due);
                c->retried = 1;
            }
        }
    }
    errors += in_flight + (next - queued_from) + (total - next);
    /* The answers' time span: the schedule's, or longer when the server fell behind it. */
    double span = last_answer - start > total / rate ? last_answer - start : total / rate;
    printf("%ld %ld %ld %.6f %d\n", total, answered, errors, span, connections);
    for (long i = 0; i < answered; i++) printf("%u\n", latencies[i]);
    return 0;
}
