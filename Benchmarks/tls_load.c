#define _GNU_SOURCE
// A load generator for HTTP/1.1 over mutual TLS (wrk cannot present a client certificate).
// N threads, one connection each, for D seconds:
//   keep-alive (default): one connection per thread, GET after GET on it;
//   --handshakes: a new connection (full handshake, no session resumption) for every GET.
// Without --ca/--cert/--key it speaks plain HTTP, to compare with wrk.
// Prints requests per second and the p50/p99 latency of the GETs.
//
//   cc -O2 -o tls_load Benchmarks/tls_load.c -lssl -lcrypto -lpthread
//   tls_load HOST PORT PATH THREADS SECONDS [--handshakes] [--ca F --cert F --key F]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host, *path;
static int port, seconds, handshakes;
static SSL_CTX *ctx;
static atomic_int stop;
enum { MAX_SAMPLES = 1 << 20 };

struct worker { long done, errors; double *lat; long nlat; };

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

struct conn { int fd; SSL *ssl; };

static int xwrite(struct conn *c, const char *b, int n) { return c->ssl ? SSL_write(c->ssl, b, n) : (int)write(c->fd, b, n); }
static int xread(struct conn *c, char *b, int n) { return c->ssl ? SSL_read(c->ssl, b, n) : (int)read(c->fd, b, n); }

static int open_conn(struct conn *c) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) { close(c->fd); return -1; }
    c->ssl = NULL;
    if (ctx) {
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_connect(c->ssl) != 1) { SSL_free(c->ssl); close(c->fd); return -1; }
    }
    return 0;
}

static void close_conn(struct conn *c) {
    if (c->ssl) { SSL_shutdown(c->ssl); SSL_free(c->ssl); }
    close(c->fd);
}

// One GET and its whole response (Content-Length); 0 on success.
static int get(struct conn *c, const char *request, int len) {
    static __thread char buf[65536];
    if (xwrite(c, request, len) != len) return -1;
    int have = 0; long body = -1; int head = -1;
    for (;;) {
        int n = xread(c, buf + have, (int)sizeof buf - have - 1);
        if (n <= 0) return -1;
        have += n; buf[have] = 0;
        if (head < 0) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e) continue;
            head = (int)(e - buf) + 4;
            char *cl = strcasestr(buf, "content-length:");
            if (!cl || cl > e) return -1;
            body = atol(cl + 15);
        }
        if (have - head >= body) {
            if (have - head > body) return -1;  // no pipelining here
            return 0;
        }
        if (have >= (int)sizeof buf - 1) return -1;  // responses here are small
    }
}

static void *run(void *arg) {
    struct worker *w = arg;
    char request[512];
    int len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/x-mplane+json\r\n\r\n", path, host, port);
    struct conn c;
    int open = 0;
    while (!atomic_load(&stop)) {
        double t0 = now();
        if (!open) {
            if (open_conn(&c) != 0) { w->errors++; usleep(1000); continue; }
            open = 1;
        }
        if (get(&c, request, len) != 0) { w->errors++; close_conn(&c); open = 0; continue; }
        if (handshakes) { close_conn(&c); open = 0; }
        double dt = now() - t0;
        if (w->nlat < MAX_SAMPLES) w->lat[w->nlat++] = dt;
        w->done++;
    }
    if (open) close_conn(&c);
    return NULL;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: tls_load HOST PORT PATH THREADS SECONDS [--handshakes] [--ca F --cert F --key F]\n"); return 64; }
    signal(SIGPIPE, SIG_IGN);  // a server closing a connection is an error counted, not the end
    host = argv[1]; port = atoi(argv[2]); path = argv[3];
    int threads = atoi(argv[4]); seconds = atoi(argv[5]);
    const char *ca = NULL, *cert = NULL, *key = NULL;
    for (int i = 6; i < argc; i++) {
        if (!strcmp(argv[i], "--handshakes")) handshakes = 1;
        else if (!strcmp(argv[i], "--ca") && i + 1 < argc) ca = argv[++i];
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc) cert = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc) key = argv[++i];
    }
    if (ca) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every handshake a full one
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
            || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) { ERR_print_errors_fp(stderr); return 1; }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    struct worker *ws = calloc(threads, sizeof *ws);
    pthread_t *ts = calloc(threads, sizeof *ts);
    for (int i = 0; i < threads; i++) { ws[i].lat = malloc(sizeof(double) * MAX_SAMPLES); pthread_create(&ts[i], NULL, run, &ws[i]); }
    double t0 = now();
    sleep(seconds);
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++) pthread_join(ts[i], NULL);
    double elapsed = now() - t0;
    long done = 0, errors = 0, n = 0;
    for (int i = 0; i < threads; i++) { done += ws[i].done; errors += ws[i].errors; n += ws[i].nlat; }
    double *all = malloc(sizeof(double) * (n ? n : 1));
    long k = 0;
    for (int i = 0; i < threads; i++) for (long j = 0; j < ws[i].nlat; j++) all[k++] = ws[i].lat[j];
    qsort(all, n, sizeof *all, cmp);
    printf("%s %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %ld requests, %ld errors, %d threads, %.1f s\n",
           ctx ? "tls" : "plain", handshakes ? "new connection per request" : "keep-alive", done / elapsed,
           n ? all[n / 2] * 1e3 : 0, n ? all[(long)(n * 0.99)] * 1e3 : 0, done, errors, threads, elapsed);
    return errors > done ? 1 : 0;
}
