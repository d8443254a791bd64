#ifndef KNOCKC_VERSION_H
#define KNOCKC_VERSION_H

/// The release this source tree is. scripts/package reads it from this line, so it is the one
/// place the number is written; a tag vRELEASE marks the commit that is the release itself.
#define KNOCKC_RELEASE "0.6.0"

/// The version `knockc --version` prints. scripts/package passes the version it builds the
/// Debian package as (`-Xcc -DKNOCKC_VERSION="…"`); a plain `swift build` says
/// KNOCKC_RELEASE "-dev", since a build-tool plugin cannot ask git reliably.
/// C, not Swift, because only a C macro can carry a string in from the command line.
const char *knockc_version(void);

#endif
