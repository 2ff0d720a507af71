#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/timex.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int csupport_enter_netns(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int r = setns(fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

int csupport_clock_state(struct csupport_clock_state *out) {
    struct timex t = {0};  // modes 0: nothing is set
    int r = adjtimex(&t);
    if (r < 0) return -errno;
    out->state = r;
    out->status = t.status;
    out->esterror_us = t.esterror;
    out->maxerror_us = t.maxerror;
    return 0;
}

int csupport_route_interface(const struct sockaddr *to, socklen_t len, char *name, size_t cap) {
    int fd = socket(to->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_storage local;
    socklen_t n = sizeof local;
    // Connecting a UDP socket sends nothing: it asks the kernel for the route.
    if (connect(fd, to, len) < 0 || getsockname(fd, (struct sockaddr *)&local, &n) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0) return -errno;
    int r = -ENODEV;
    for (struct ifaddrs *i = list; i && r != 0; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != local.ss_family) continue;
        int same = local.ss_family == AF_INET
            ? ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == ((struct sockaddr_in *)&local)->sin_addr.s_addr
            : memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, &((struct sockaddr_in6 *)&local)->sin6_addr, 16) == 0;
        if (same) {
            snprintf(name, cap, "%s", i->ifa_name);
            r = 0;
        }
    }
    freeifaddrs(list);
    return r;
}

// Start-up code and data are touched once (the runtime's and libraries' initialisers,
// configuration parsing, certificate loading) and stay mapped, so they count in the
// resident set for the life of the process. Dropping the mapping of the executable's
// read-only segments lets only what runs from then on come back: a page touched again faults
// in from the page cache (a minor fault), and the rest is the kernel's to reclaim.
//
// Only pages that are still the file's are dropped: segments that are not writable and not
// RELRO, within the file's contents, and of those only the pages /proc/self/pagemap shows
// as file pages. A private copy (a text relocation, a debugger's breakpoint, a uprobe) is
// anonymous and kept, since dropping it would lose what was written. Without pagemap,
// nothing is dropped.
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mman.h>

// Code the test patches, as a debugger sets a breakpoint, to check that a private copy of a
// page survives the release (StartupPagesTests). Never called.
__attribute__((noinline, used)) void csupport_release_probe_point(void) { __asm__ volatile("" ::: "memory"); }
const void *csupport_release_probe_address(void) { return (const void *)csupport_release_probe_point; }

#define PM_PRESENT (1ULL << 63)
#define PM_FILE (1ULL << 61)

struct release_state { long released; int pagemap; int failed; };

// Drops the file-backed pages of [lo, hi), keeping private copies.
static void release_range(struct release_state *st, uintptr_t lo, uintptr_t hi, uintptr_t page) {
    uint64_t entries[512];
    uintptr_t run = 0;  // start of the run of pages to drop, 0 if none
    for (uintptr_t a = lo; a < hi; ) {
        size_t n = (hi - a) / page;
        if (n > 512) n = 512;
        ssize_t got = pread(st->pagemap, entries, n * sizeof *entries, (off_t)(a / page * sizeof *entries));
        if (got < (ssize_t)(n * sizeof *entries)) { st->failed = EIO; return; }
        for (size_t i = 0; i < n; i++, a += page) {
            int private_copy = (entries[i] & PM_PRESENT) && !(entries[i] & PM_FILE);
            if (private_copy) {
                if (run && madvise((void *)run, a - run, MADV_DONTNEED) == 0) st->released += (long)(a - run);
                run = 0;
            } else if (!run) {
                run = a;
            }
        }
    }
    if (run && madvise((void *)run, hi - run, MADV_DONTNEED) == 0) st->released += (long)(hi - run);
}

static int release_first_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct release_state *st = data;
    // The first object is the executable (glibc and musl, dynamic or static); check it.
    if ((uintptr_t)info->dlpi_phdr != (uintptr_t)getauxval(AT_PHDR)) { st->failed = ENOENT; return 1; }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t relro_lo = 0, relro_hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type == PT_GNU_RELRO) {
            relro_lo = (info->dlpi_addr + p->p_vaddr) & ~(page - 1);
            relro_hi = (info->dlpi_addr + p->p_vaddr + p->p_memsz + page - 1) & ~(page - 1);
        }
    }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD || (p->p_flags & PF_W)) continue;
        uintptr_t lo = (info->dlpi_addr + p->p_vaddr + page - 1) & ~(page - 1);
        uintptr_t hi = (info->dlpi_addr + p->p_vaddr + p->p_filesz) & ~(page - 1);
        if (hi <= lo || (relro_hi > lo && relro_lo < hi)) continue;
        release_range(st, lo, hi, page);
        if (st->failed) return 1;
    }
    return 1;  // only the executable
}

long csupport_release_startup_pages(void) {
    struct release_state st = { 0, open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), 0 };
    if (st.pagemap < 0) return -errno;
    dl_iterate_phdr(release_first_object, &st);
    close(st.pagemap);
    return st.failed ? -st.failed : st.released;
}
