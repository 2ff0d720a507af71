#define _GNU_SOURCE
// An open-loop load generator for the supervisor's polls: requests are due at a fixed rate,
// whether or not earlier ones were answered, and each one's latency counts from the moment it
// was due (so a stall shows in the tail instead of slowing the load, which wrk's closed loop
// does: "coordinated omission"). One thread, epoll, CONNECTIONS keep-alive HTTP/1.1
// connections; a due request goes out on an idle connection, or waits for one.
//
//   cc -O2 -o openloop Benchmarks/mpsup/openloop.c
//   openloop HOST PORT RATE SECONDS CONNECTIONS COMPONENTS
//
// Each request is `GET /show/specification` from another of COMPONENTS simulated components
// (X-MPlane-Component: sim-<i>), as Benchmarks/mpsup/poll.lua sends them. Prints one JSON
// object: offered and answered rates, latency percentiles in ms, non-2xx answers, errors, and
// the largest number of due requests that waited for a connection.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { BUF = 16384 };

struct conn {
    int fd;      // -1 once closed (by the server, or after an error)
    int busy;
    double due;  // when the request in flight was due
    int have;    // bytes of the response's header read so far (the body is counted, not kept)
    long body;   // body bytes still to come once the header is in, else -1
    int status;
    char buf[BUF];
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Once the header is in: its status and body length (c->body), the header's bytes dropped and
// what followed it counted against the body. 0: not all there yet; -1: not a response we take.
static int take_header(struct conn *c) {
    const char *end = memmem(c->buf, (size_t)c->have, "\r\n\r\n", 4);
    if (!end) return c->have >= BUF ? -1 : 0;
    int header = (int)(end - c->buf) + 4;
    if (c->have < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0) return -1;
    c->status = atoi(c->buf + 9);
    long body = 0;
    for (const char *p = c->buf; p < end; p++) {
        if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            body = strtol(p + 15, NULL, 10);
            break;
        }
    }
    if (body < 0) return -1;
    c->body = body - (c->have - header);
    c->have = 0;
    return c->body < 0 ? -1 : 1;  // no pipelining: nothing may follow the body
}

static void drop(int epfd, struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->busy = 0;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: openloop HOST PORT RATE SECONDS CONNECTIONS COMPONENTS\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    double rate = atof(argv[3]);
    double seconds = atof(argv[4]);
    int nconn = atoi(argv[5]), components = atoi(argv[6]);
    if (rate <= 0 || seconds <= 0 || nconn <= 0 || nconn > 4096 || components <= 0) return 2;
    signal(SIGPIPE, SIG_IGN);  // a connection the server closed fails its write, not the run
    long total = (long)(rate * seconds);
    double *lat = malloc(sizeof(double) * (size_t)total);
    double *waiting = malloc(sizeof(double) * (size_t)total);  // due times without a connection yet
    struct conn *conns = calloc((size_t)nconn, sizeof(struct conn));
    int *idle = malloc(sizeof(int) * (size_t)nconn);
    if (!lat || !waiting || !conns || !idle) return 1;
    int epfd = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "openloop: %s is not an IPv4 address\n", host);
        return 2;
    }
    int nidle = 0;
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
            perror("connect");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
        idle[nidle++] = i;
    }
    long issued = 0, answered = 0, non2xx = 0, errors = 0, nwait = 0, headwait = 0, maxwait = 0, next_component = 0;
    double last = 0, start = now() + 0.01, stop_issuing = start + seconds, give_up = stop_issuing + 5;
    struct epoll_event events[256];
    char request[256];
    while (answered + errors < issued || issued < total) {
        double t = now();
        if (t > give_up) break;
        while (issued < total && start + issued / rate <= t) waiting[nwait++] = start + issued++ / rate;
        while (headwait < nwait && nidle > 0) {
            struct conn *c = &conns[idle[--nidle]];
            if (c->fd < 0) continue;  // closed while idle: out of the pool
            int n = snprintf(request, sizeof request,
                             "GET /show/specification HTTP/1.1\r\nHost: %s:%d\r\nX-MPlane-Component: sim-%ld\r\n\r\n",
                             host, port, next_component);
            next_component = (next_component + 1) % components;
            c->due = waiting[headwait++];
            c->busy = 1;
            c->have = 0;
            c->body = -1;
            if (write(c->fd, request, (size_t)n) != n) {
                errors++;
                drop(epfd, c);  // left out from now on
            }
        }
        if (nwait - headwait > maxwait) maxwait = nwait - headwait;
        // Wait until the next request is due, or an answer comes.
        struct timespec timeout = {0, 0};
        if (issued < total) {
            double d = start + issued / rate - now();
            if (d > 0) timeout = (struct timespec){(time_t)d, (long)((d - (time_t)d) * 1e9)};
        } else {
            timeout = (struct timespec){0, 1000000};
        }
        int n = epoll_pwait2(epfd, events, 256, &timeout, NULL);
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[events[k].data.u32];
            if (c->fd < 0) continue;
            char sink[BUF];
            int into_header = c->body < 0;
            ssize_t r = into_header ? read(c->fd, c->buf + c->have, (size_t)(BUF - c->have)) : read(c->fd, sink, sizeof sink);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) {
                if (c->busy) errors++;
                drop(epfd, c);
                continue;
            }
            if (!c->busy) {  // nothing asked: not a server we can measure
                errors++;
                drop(epfd, c);
                continue;
            }
            if (into_header) {
                c->have += (int)r;
                int got = take_header(c);
                if (got < 0) {
                    errors++;
                    drop(epfd, c);
                    continue;
                }
                if (got == 0) continue;
            } else {
                c->body -= r;
                if (c->body < 0) {
                    errors++;
                    drop(epfd, c);
                    continue;
                }
            }
            if (c->body == 0) {
                last = now();
                lat[answered++] = last - c->due;
                if (c->status < 200 || c->status > 299) non2xx++;
                c->busy = 0;
                c->body = -1;
                idle[nidle++] = (int)events[k].data.u32;
            }
        }
    }
    double elapsed = last > start ? last - start : seconds;
    qsort(lat, (size_t)answered, sizeof(double), cmp);
#define PCT(p) (answered ? lat[(long)((p) / 100.0 * (answered - 1))] * 1000 : -1)
    printf("{\"offered_per_s\": %.0f, \"issued\": %ld, \"answered\": %ld, \"answered_per_s\": %.0f, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, "
           "\"non_2xx\": %ld, \"errors\": %ld, \"unanswered\": %ld, \"most_waiting_for_a_connection\": %ld}\n",
           rate, issued, answered, answered / (elapsed < seconds ? seconds : elapsed),
           PCT(50), PCT(90), PCT(99), PCT(99.9), PCT(100), non2xx, errors, issued - answered - errors, maxwait);
    return 0;
}
