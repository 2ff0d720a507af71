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
