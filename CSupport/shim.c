#define _GNU_SOURCE
#include "CSupport.h"

int csupport_version(void) { return 1; }
