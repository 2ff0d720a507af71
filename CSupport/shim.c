#define _GNU_SOURCE
#include "CSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/timex.h>
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
