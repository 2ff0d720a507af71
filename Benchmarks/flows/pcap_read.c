// The read limit: pcap_next_ex over a trace and nothing else (BENCHMARKS.md, "Passive flows").
// cc -O2 -o pcap_read pcap_read.c -lpcap && ./pcap_read FILE
#include <pcap/pcap.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: pcap_read FILE\n"); return 2; }
    char err[PCAP_ERRBUF_SIZE];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pcap_t *p = pcap_open_offline_with_tstamp_precision(argv[1], PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) { fprintf(stderr, "%s\n", err); return 1; }
    struct pcap_pkthdr *h;
    const u_char *data;
    unsigned long long frames = 0, bytes = 0;
    while (pcap_next_ex(p, &h, &data) == 1) { frames++; bytes += h->caplen; }
    pcap_close(p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("{\"frames\": %llu, \"wall_s\": %.6f, \"pps\": %.0f}\n", frames, s, frames / s);
    return 0;
}
