// Passive capture for the capture service: a libpcap handle in immediate, non-blocking
// mode whose frames are counted in C, in place, without copying or allocating.
#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <pcap/pcap.h>

struct csupport_capture {
    pcap_t *pcap;
    int linktype;
    struct csupport_counts *counts;  // where the dispatch callback counts (set per call)
};

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

// Counts an IP packet starting at `p` (caplen bytes available). `version` 0 means: read it.
static void count_ip(const uint8_t *p, uint32_t caplen, struct csupport_counts *c) {
    if (caplen < 1) { c->other_packets++; return; }
    int version = p[0] >> 4;
    uint64_t total, header;
    uint8_t proto;
    if (version == 4) {
        if (caplen < 20) { c->other_packets++; return; }
        total = be16(p + 2);
        header = (uint64_t)(p[0] & 0x0F) * 4;
        proto = p[9];
        // Only the first fragment carries the transport header.
        if ((be16(p + 6) & 0x1FFF) != 0) proto = 0xFF;
    } else if (version == 6) {
        if (caplen < 40) { c->other_packets++; return; }
        total = 40 + (uint64_t)be16(p + 4);
        header = 40;
        proto = p[6];
        // Skip the usual extension headers (hop-by-hop, routing, destination options, fragment).
        for (int i = 0; i < 8; i++) {
            if (proto == 0 || proto == 43 || proto == 60) {
                if (caplen < header + 2) break;
                uint8_t next = p[header];
                header += 8 + (uint64_t)p[header + 1] * 8;
                proto = next;
            } else if (proto == 44) {
                if (caplen < header + 8) break;
                uint8_t next = p[header];
                int first = (be16(p + header + 2) & 0xFFF8) == 0;
                header += 8;
                proto = first ? next : 0xFF;
            } else {
                break;
            }
        }
    } else {
        c->other_packets++;
        return;
    }
    c->ip_packets++;
    c->ip_octets += total;
    uint64_t l4 = total > header ? total - header : 0;
    if (proto == 6) { c->tcp_packets++; c->tcp_octets += l4; }
    else if (proto == 17) { c->udp_packets++; c->udp_octets += l4; }
}

void csupport_count_frame(int linktype, const uint8_t *data, uint32_t caplen, struct csupport_counts *c) {
    c->frames++;
    uint32_t at = 0;
    uint16_t ethertype = 0;
    switch (linktype) {
    case DLT_EN10MB:
        if (caplen < 14) { c->other_packets++; return; }
        ethertype = be16(data + 12);
        at = 14;
        // Up to two VLAN tags.
        for (int i = 0; i < 2 && (ethertype == 0x8100 || ethertype == 0x88A8); i++) {
            if (caplen < at + 4) { c->other_packets++; return; }
            ethertype = be16(data + at + 2);
            at += 4;
        }
        break;
    case DLT_LINUX_SLL:
        if (caplen < 16) { c->other_packets++; return; }
        ethertype = be16(data + 14);
        at = 16;
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        if (caplen < 20) { c->other_packets++; return; }
        ethertype = be16(data);
        at = 20;
        break;
#endif
    case DLT_NULL:
    case DLT_LOOP:
        if (caplen < 4) { c->other_packets++; return; }
        at = 4;
        ethertype = 0;  // the family word's byte order varies: read the IP version instead
        break;
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
        ethertype = 0;
        break;
    default:
        c->other_packets++;
        return;
    }
    if (ethertype != 0 && ethertype != 0x0800 && ethertype != 0x86DD) { c->other_packets++; return; }
    count_ip(data + at, caplen - at, c);
}

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes) {
    struct csupport_capture *cap = (struct csupport_capture *)user;
    csupport_count_frame(cap->linktype, bytes, h->caplen, cap->counts);
}

struct csupport_capture *csupport_capture_open(const char *device, int snaplen, int buffer_bytes, char *errbuf,
                                               int *status) {
    *status = 0;
    errbuf[0] = 0;
    pcap_t *p = pcap_create(device, errbuf);
    if (!p) { *status = PCAP_ERROR; return NULL; }
    pcap_set_snaplen(p, snaplen);
    pcap_set_promisc(p, 0);
    pcap_set_immediate_mode(p, 1);
    pcap_set_timeout(p, 10);
    if (buffer_bytes > 0) pcap_set_buffer_size(p, buffer_bytes);
    int r = pcap_activate(p);
    if (r < 0) {
        *status = r;
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(p));
        if (errbuf[0] == 0) snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_statustostr(r));
        pcap_close(p);
        return NULL;
    }
    if (pcap_setnonblock(p, 1, errbuf) < 0) { *status = PCAP_ERROR; pcap_close(p); return NULL; }
    struct csupport_capture *cap = calloc(1, sizeof *cap);
    if (!cap) { *status = PCAP_ERROR; snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory"); pcap_close(p); return NULL; }
    cap->pcap = p;
    cap->linktype = pcap_datalink(p);
    return cap;
}

int csupport_capture_filter(struct csupport_capture *cap, const char *expression, char *errbuf) {
    struct bpf_program prog;
    if (pcap_compile(cap->pcap, &prog, expression, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(cap->pcap));
        return -1;
    }
    int r = pcap_setfilter(cap->pcap, &prog);
    if (r < 0) snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(cap->pcap));
    pcap_freecode(&prog);
    return r < 0 ? -1 : 0;
}

int csupport_capture_check_filter(const char *expression, char *errbuf) {
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
    if (!dead) { snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory"); return -1; }
    struct bpf_program prog;
    int r = pcap_compile(dead, &prog, expression, 1, PCAP_NETMASK_UNKNOWN);
    if (r < 0) snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(dead));
    else pcap_freecode(&prog);
    pcap_close(dead);
    return r < 0 ? -1 : 0;
}

int csupport_capture_fd(struct csupport_capture *cap) { return pcap_get_selectable_fd(cap->pcap); }

int csupport_capture_linktype(struct csupport_capture *cap) { return cap->linktype; }

int csupport_capture_dispatch(struct csupport_capture *cap, struct csupport_counts *counts, char *errbuf) {
    cap->counts = counts;
    int n = pcap_dispatch(cap->pcap, -1, on_frame, (u_char *)cap);
    if (n == PCAP_ERROR) snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(cap->pcap));
    return n;
}

int csupport_capture_stats(struct csupport_capture *cap, uint64_t *received, uint64_t *dropped) {
    struct pcap_stat st;
    if (pcap_stats(cap->pcap, &st) < 0) return -1;
    *received = st.ps_recv;
    // Only what this handle lost: ps_ifdrop counts the whole interface, filter or not.
    *dropped = st.ps_drop;
    return 0;
}

void csupport_capture_close(struct csupport_capture *cap) {
    if (!cap) return;
    pcap_close(cap->pcap);
    free(cap);
}

const char *csupport_pcap_version(void) { return pcap_lib_version(); }
