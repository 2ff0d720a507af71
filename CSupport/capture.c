// Passive capture for the capture services: a libpcap handle in immediate, non-blocking
// mode (or on a trace file) whose frames are handed to Swift in place, without copying or
// allocating; the decoding and metering are Swift's (MPlaneCapture).
#define _GNU_SOURCE
#include "CSupport.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/if_packet.h>

#include <net/if.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pcap/pcap.h>

// libpcap is loaded on first use, not linked: it brings D-Bus, systemd, gcrypt, lzma, zstd
// and lz4 with it, about 1 MiB resident in every probe whether it captures or not, and a
// probe without libpcap installed still starts (capture then fails with the reason).
#define PCAP_FUNCTIONS(X) \
    X(pcap_t *, pcap_create, (const char *, char *)) \
    X(int, pcap_set_snaplen, (pcap_t *, int)) \
    X(int, pcap_set_promisc, (pcap_t *, int)) \
    X(int, pcap_set_immediate_mode, (pcap_t *, int)) \
    X(int, pcap_set_timeout, (pcap_t *, int)) \
    X(int, pcap_set_buffer_size, (pcap_t *, int)) \
    X(int, pcap_activate, (pcap_t *)) \
    X(char *, pcap_geterr, (pcap_t *)) \
    X(const char *, pcap_statustostr, (int)) \
    X(void, pcap_close, (pcap_t *)) \
    X(int, pcap_setnonblock, (pcap_t *, int, char *)) \
    X(int, pcap_datalink, (pcap_t *)) \
    X(int, pcap_compile, (pcap_t *, struct bpf_program *, const char *, int, bpf_u_int32)) \
    X(int, pcap_setfilter, (pcap_t *, struct bpf_program *)) \
    X(void, pcap_freecode, (struct bpf_program *)) \
    X(pcap_t *, pcap_open_dead, (int, int)) \
    X(int, pcap_get_selectable_fd, (pcap_t *)) \
    X(int, pcap_dispatch, (pcap_t *, int, pcap_handler, u_char *)) \
    X(int, pcap_stats, (pcap_t *, struct pcap_stat *)) \
    X(pcap_t *, pcap_fopen_offline_with_tstamp_precision, (FILE *, u_int, char *)) \
    X(int, pcap_get_tstamp_precision, (pcap_t *))

static struct {
#define PCAP_FIELD(ret, name, args) ret(*name) args;
    PCAP_FUNCTIONS(PCAP_FIELD)
#undef PCAP_FIELD
    int ready;
} lib;
static char lib_error[PCAP_ERRBUF_SIZE];
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_load(void) {
    // Debian's soname first, then upstream's; the reason reported is the first one's.
    static const char *const names[] = {"libpcap.so.0.8", "libpcap.so.1", "libpcap.so"};
    void *handle = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !handle; i++) {
        handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        const char *why = handle ? NULL : dlerror();
        if (i == 0 && why)
            snprintf(lib_error, sizeof lib_error, "libpcap cannot be loaded (Debian: apt-get install libpcap0.8): %s", why);
    }
    if (!handle) return;
#define PCAP_RESOLVE(ret, name, args) \
    if (!(lib.name = (ret(*) args)dlsym(handle, #name))) { \
        snprintf(lib_error, sizeof lib_error, "libpcap has no %s (too old)", #name); \
        dlclose(handle); \
        return; \
    }
    PCAP_FUNCTIONS(PCAP_RESOLVE)
#undef PCAP_RESOLVE
    lib_error[0] = 0;
    lib.ready = 1;
}

// 0 once libpcap is loaded; -1 with the reason in `errbuf` when it cannot be.
static int lib_ready(char *errbuf) {
    pthread_once(&lib_once, lib_load);
    if (lib.ready) return 0;
    snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", lib_error);
    return -1;
}

struct csupport_capture {
    pcap_t *pcap;
    int linktype;
    int64_t ts_scale;  // nanoseconds per unit of the frame header's fraction (1000 or 1)
    csupport_frame_handler handler;  // set per dispatch
    void *context;
};

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes) {
    struct csupport_capture *cap = (struct csupport_capture *)user;
    // A trace's timestamps are whatever its writer put there (pcapng's are 64 bits): kept
    // within 1970..2100 and their fraction within a second, so that the time arithmetic
    // downstream (timeouts, periods, in nanoseconds) cannot overflow.
    int64_t sec = (int64_t)h->ts.tv_sec, frac = (int64_t)h->ts.tv_usec * cap->ts_scale;
    if (sec < 0) sec = 0;
    if (sec > 4102444800) sec = 4102444800;
    if (frac < 0 || frac > 999999999) frac = 0;
    int64_t ts = sec * 1000000000 + frac;
    cap->handler(cap->context, ts, bytes, h->caplen, h->len);
}

static struct csupport_capture *wrap(pcap_t *p, char *errbuf, int *status) {
    struct csupport_capture *cap = calloc(1, sizeof *cap);
    if (!cap) { *status = PCAP_ERROR; snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory"); lib.pcap_close(p); return NULL; }
    cap->pcap = p;
    cap->linktype = lib.pcap_datalink(p);
    cap->ts_scale = lib.pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO ? 1 : 1000;
    return cap;
}

struct csupport_capture *csupport_capture_open(const char *device, int snaplen, int buffer_bytes, char *errbuf,
                                               int *status) {
    *status = 0;
    errbuf[0] = 0;
    if (lib_ready(errbuf) < 0) { *status = PCAP_ERROR; return NULL; }
    pcap_t *p = lib.pcap_create(device, errbuf);
    if (!p) { *status = PCAP_ERROR; return NULL; }
    lib.pcap_set_snaplen(p, snaplen);
    lib.pcap_set_promisc(p, 0);
    lib.pcap_set_immediate_mode(p, 1);
    lib.pcap_set_timeout(p, 10);
    if (buffer_bytes > 0) lib.pcap_set_buffer_size(p, buffer_bytes);
    int r = lib.pcap_activate(p);
    if (r < 0) {
        *status = r;
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", lib.pcap_geterr(p));
        if (errbuf[0] == 0) snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", lib.pcap_statustostr(r));
        lib.pcap_close(p);
        return NULL;
    }
    if (lib.pcap_setnonblock(p, 1, errbuf) < 0) { *status = PCAP_ERROR; lib.pcap_close(p); return NULL; }
    return wrap(p, errbuf, status);
}

struct csupport_capture *csupport_capture_open_file(const char *dir, const char *name, char *errbuf, int *status) {
    *status = 0;
    errbuf[0] = 0;
    if (lib_ready(errbuf) < 0) { *status = -1; return NULL; }
    int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "capture-dir %s: %s", dir, strerror(errno));
        *status = -5;
        return NULL;
    }
    // O_NONBLOCK: a FIFO must not block the open (it is refused just below).
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof how);
    int e = errno;
    close(dirfd);
    if (fd < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", strerror(e));
        *status = e == ENOENT || e == ENOTDIR ? -2 : e == EXDEV || e == ELOOP ? -3 : -5;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "not a regular file");
        close(fd);
        *status = -4;
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) { snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", strerror(errno)); close(fd); *status = -5; return NULL; }
    pcap_t *p = lib.pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p) { fclose(f); *status = -1; return NULL; }  // libpcap's reason is in errbuf
    return wrap(p, errbuf, status);  // pcap_close closes f
}

int csupport_capture_linktype(struct csupport_capture *cap) { return cap->linktype; }

int csupport_capture_filter(struct csupport_capture *cap, const char *expression, char *errbuf) {
    struct bpf_program prog;
    if (lib.pcap_compile(cap->pcap, &prog, expression, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", lib.pcap_geterr(cap->pcap));
        return -1;
    }
    int r = lib.pcap_setfilter(cap->pcap, &prog);
    if (r < 0) snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", lib.pcap_geterr(cap->pcap));
    lib.pcap_freecode(&prog);
    return r < 0 ? -1 : 0;
}

int csupport_capture_check_filter(const char *expression, char *errbuf) {
    if (lib_ready(errbuf) < 0) return -2;
    pcap_t *dead = lib.pcap_open_dead(DLT_EN10MB, 65535);
    if (!dead) { snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory"); return -1; }
    struct bpf_program prog;
    int r = lib.pcap_compile(dead, &prog, expression, 1, PCAP_NETMASK_UNKNOWN);
    if (r < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", lib.pcap_geterr(dead));
    } else {
        // The kernel refuses a longer program (BPF_MAXINSNS), and libpcap then filters every
        // frame in user space with no more than a warning on stderr.
        if (prog.bf_len > 4096) {
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "compiles to %u BPF instructions, more than the kernel's 4096", prog.bf_len);
            r = -1;
        }
        lib.pcap_freecode(&prog);
    }
    lib.pcap_close(dead);
    return r < 0 ? -1 : 0;
}

int csupport_capture_fd(struct csupport_capture *cap) { return lib.pcap_get_selectable_fd(cap->pcap); }

int csupport_capture_dispatch(struct csupport_capture *cap, int max, csupport_frame_handler handler, void *context,
                              char *errbuf) {
    cap->handler = handler;
    cap->context = context;
    int n = lib.pcap_dispatch(cap->pcap, max, on_frame, (u_char *)cap);
    if (n == PCAP_ERROR) snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", lib.pcap_geterr(cap->pcap));
    return n;
}

int csupport_capture_stats(struct csupport_capture *cap, uint64_t *received, uint64_t *dropped) {
    struct pcap_stat st;
    if (lib.pcap_stats(cap->pcap, &st) < 0) return -1;
    *received = st.ps_recv;
    // Only what this handle lost: ps_ifdrop counts the whole interface, filter or not.
    *dropped = st.ps_drop;
    return 0;
}

void csupport_capture_close(struct csupport_capture *cap) {
    if (!cap) return;
    lib.pcap_close(cap->pcap);
    free(cap);
}

int csupport_capture_probe(const char *device, char *errbuf) {
    errbuf[0] = 0;
    // "any" is libpcap's pseudo-device for every interface: ifindex 0 for a packet socket.
    int any = strcmp(device, "any") == 0;
    unsigned index = any ? 0 : if_nametoindex(device);
    if (index == 0 && !any) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", strerror(errno));
        return PCAP_ERROR_NO_SUCH_DEVICE;
    }
    // Protocol 0: the socket receives nothing; it only proves the right to capture.
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", strerror(e));
        return e == EPERM || e == EACCES ? PCAP_ERROR_PERM_DENIED : PCAP_ERROR;
    }
    struct sockaddr_ll address = {.sll_family = AF_PACKET, .sll_protocol = 0, .sll_ifindex = (int)index};
    int r = bind(fd, (struct sockaddr *)&address, sizeof address);
    int e = errno;
    // A bind with protocol 0 does not look at the link state; libpcap refuses a device that
    // is down (PCAP_ERROR_IFACE_NOT_UP), so ask.
    struct ifreq request = {0};
    if (r == 0 && !any) {
        snprintf(request.ifr_name, sizeof request.ifr_name, "%s", device);
        if (ioctl(fd, SIOCGIFFLAGS, &request) < 0) { r = -1; e = errno; }
        else if (!(request.ifr_flags & IFF_UP)) { r = -1; e = ENETDOWN; }
    }
    close(fd);
    if (r < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", strerror(e));
        return e == ENODEV ? PCAP_ERROR_NO_SUCH_DEVICE : e == ENETDOWN ? PCAP_ERROR_IFACE_NOT_UP : PCAP_ERROR;
    }
    return 0;
}
