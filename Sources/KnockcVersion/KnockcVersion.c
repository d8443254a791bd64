#include "KnockcVersion.h"

#ifndef KNOCKC_VERSION
#define KNOCKC_VERSION KNOCKC_RELEASE "-dev"
#endif

const char *knockc_version(void) { return KNOCKC_VERSION; }
