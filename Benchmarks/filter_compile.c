// pcap_compile time against filter size (BENCHMARKS.md, "Hardening"). Build: cc -O2 -o .build/filter_compile Benchmarks/filter_compile.c -lpcap
// usage: filter_compile PATTERN N OPTIMIZE [TIMEOUT_S]
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

static char *build(const char *pat, int n) {
    size_t cap = 64 + (size_t)n * 64;
    char *s = malloc(cap), *p = s;
    *p = 0;
    for (int i = 0; i < n; i++) {
        int a = i / 250, b = i % 250 + 1;
        if (!strcmp(pat, "host-or")) p += sprintf(p, "%shost 10.0.%d.%d", i ? " or " : "", a, b);
        else if (!strcmp(pat, "port-and")) p += sprintf(p, "%sport %d", i ? " and " : "", i + 1);
        else if (!strcmp(pat, "notport-and")) p += sprintf(p, "%snot port %d", i ? " and " : "", i + 1);
        else if (!strcmp(pat, "port-or")) p += sprintf(p, "%sport %d", i ? " or " : "", i + 1);
        else if (!strcmp(pat, "net-or")) p += sprintf(p, "%snet 10.%d.%d.0/24", i ? " or " : "", a, b);
        else if (!strcmp(pat, "nested")) p += sprintf(p, "%s(host 10.0.%d.%d", i ? " or " : "", a, b);
        else if (!strcmp(pat, "hostport")) p += sprintf(p, "%s(host 10.0.%d.%d and port %d)", i ? " or " : "", a, b, i + 1);
        else if (!strcmp(pat, "port-short")) p += sprintf(p, "%s%d", i ? " or " : "port ", i + 1);
        else if (!strcmp(pat, "host-short")) p += sprintf(p, "%s10.0.%d.%d", i ? " or " : "host ", a, b);
        else if (!strcmp(pat, "protochain")) p += sprintf(p, "%sip6 protochain %d", i ? " or " : "", i % 250 + 1);
        else if (!strcmp(pat, "portrange")) p += sprintf(p, "%sportrange %d-%d", i ? " or " : "", i + 1, i + 2);
        else if (!strcmp(pat, "tcpport")) p += sprintf(p, "%stcp dst port %d", i ? " or " : "", i + 1);
        else if (!strcmp(pat, "host6")) p += sprintf(p, "%shost 2001:db8::%x", i ? " or " : "", i + 1);
        else if (!strcmp(pat, "vlan")) p += sprintf(p, "%svlan %d", i ? " and " : "", i + 1);
        else if (!strcmp(pat, "hostportrange")) p += sprintf(p, "%s(host 10.0.%d.%d and portrange %d-%d)", i ? " or " : "", a, b, i + 1, i + 9);
        else if (!strcmp(pat, "notportrange")) p += sprintf(p, "%snot portrange %d-%d", i ? " and " : "", i + 1, i + 9);
        else if (!strcmp(pat, "mixed")) p += sprintf(p, "%s%s", i ? (i % 2 ? " or " : " and ") : "", i % 3 == 0 ? "portrange 1-9" : i % 3 == 1 ? "net 10.0.0.0/8" : "port 80");
        else if (!strcmp(pat, "srcdst")) p += sprintf(p, "%s(src port %d or dst port %d)", i ? " or " : "", i + 1, i + 2);
        else { fprintf(stderr, "pattern?\n"); exit(2); }
    }
    if (!strcmp(pat, "nested")) for (int i = 0; i < n; i++) *p++ = ')', *p = 0;
    return s;
}

int main(int argc, char **argv) {
    const char *pat = argv[1];
    int n = atoi(argv[2]), opt = atoi(argv[3]);
    int timeout = argc > 4 ? atoi(argv[4]) : 60;
    char *f = build(pat, n);
    if (getenv("SHOW")) puts(f);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(timeout);
        pcap_t *d = pcap_open_dead(DLT_EN10MB, 65535);
        struct bpf_program prog;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = pcap_compile(d, &prog, f, opt, PCAP_NETMASK_UNKNOWN);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (r < 0) printf("%s\t%d\t%zu\topt=%d\t%.4f s\tERROR %s\n", pat, n, strlen(f), opt, s, pcap_geterr(d));
        else printf("%s\t%d\t%zu\topt=%d\t%.4f s\t%u insns\n", pat, n, strlen(f), opt, s, prog.bf_len);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) printf("%s\t%d\t%zu\topt=%d\t> %d s (timeout)\n", pat, n, strlen(f), opt, timeout);
    return 0;
}
