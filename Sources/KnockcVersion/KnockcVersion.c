#include "KnockcVersion.h"

// scripts/package names a header that defines KNOCKC_VERSION (see its comment for why a
// header and not the macro itself).
#ifdef KNOCKC_VERSION_HEADER
#include KNOCKC_VERSION_HEADER
#endif

#ifndef KNOCKC_VERSION
#define KNOCKC_VERSION KNOCKC_RELEASE "-dev"
#endif

const char *knockc_version(void) { return KNOCKC_VERSION; }
