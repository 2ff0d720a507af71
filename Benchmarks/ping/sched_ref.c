// The schedule-precision reference (BENCHMARKS.md, "Ping"): a minimal C loop that sends one
// UDP datagram to itself on 127.0.0.1 at each due time, RATE times a second for SECONDS,
// sleeping with clock_nanosleep(TIMER_ABSTIME) until LEAD_US before the due time and
// spinning on CLOCK_MONOTONIC the rest. Prints the send-schedule error (actual minus due)
// and the CPU it cost, as JSON; with FILE, also every send's error (nanoseconds, native int64,
// in send order) for Benchmarks/ping_cpu_pairs.py to pool over rounds.
// cc -O2 -o sched_ref sched_ref.c && ./sched_ref 10000 5 40 [FILE]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: sched_ref RATE SECONDS LEAD_US [FILE]\n"); return 2; }
    long rate = atol(argv[1]), seconds = atol(argv[2]);
    if (rate <= 0 || seconds <= 0) { fprintf(stderr, "RATE and SECONDS must be positive\n"); return 2; }
    int64_t lead = atol(argv[3]) * 1000, gap = 1000000000 / rate;
    long n = rate * seconds;
    int64_t *errors = malloc(sizeof *errors * (size_t)n);
    if (!errors) { fprintf(stderr, "out of memory\n"); return 1; }
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);  // as the probe's thread
    int rx = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(rx, (struct sockaddr *)&a, sizeof a);
    getsockname(rx, (struct sockaddr *)&a, &len);
    char payload[64] = {0}, sink[2048];
    int64_t start = now_ns() + 10000000;
    for (long i = 0; i < n; i++) {
        int64_t due = start + i * gap, t = now_ns();
        if (due - t > lead) {
            int64_t wake = due - lead;
            struct timespec ts = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        while ((t = now_ns()) < due) {}
        errors[i] = t - due;
        sendto(tx, payload, sizeof payload, 0, (struct sockaddr *)&a, sizeof a);
        while (recv(rx, sink, sizeof sink, 0) > 0) {}
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    if (argc == 5) {
        FILE *f = fopen(argv[4], "w");
        if (!f || fwrite(errors, sizeof *errors, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", argv[4]);
            return 1;
        }
    }
    qsort(errors, (size_t)n, sizeof *errors, cmp);
    printf("{\"sent\": %ld, \"schedule_error_us\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, \"cpu_s\": %.3f}\n", n,
           errors[n / 2] / 1000.0, errors[(long)((n - 1) * 0.99)] / 1000.0, errors[n - 1] / 1000.0, cpu);
    return 0;
}
