#ifndef KNOCKC_VERSION_H
#define KNOCKC_VERSION_H

/// The release this source tree is. scripts/package reads it from this line, so it is the one
/// place the number is written; a tag vRELEASE marks the commit that is the release itself.
#define KNOCKC_RELEASE "0.6.0"

/// The version `knockc --version` prints: the version scripts/package builds the Debian
/// package as (it writes a header defining KNOCKC_VERSION and names it with
/// `-Xcc -DKNOCKC_VERSION_HEADER="…"`), or KNOCKC_RELEASE "-dev" for a plain `swift build`,
/// since a build-tool plugin cannot ask git reliably. C, not Swift, because only the C
/// preprocessor can take such a value from the build's command line.
const char *knockc_version(void);

#endif
