import Foundation

/// Runs knockc itself in a fresh user and network namespace (`unshare -rn`): a kernel of its
/// own, empty, gone when the process ends. No root needed, and the host's ruleset is never
/// touched. `check --kernel` and `diff` use it to let the real kernel read a compiled table.
enum ThrowawayNamespace {
    static func runKnockc(_ arguments: [String]) throws -> Subprocess.Result {
        let knockc = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        return try Subprocess.run("/usr/bin/unshare", ["--user", "--map-root-user", "--net", "--", knockc] + arguments)
    }
}
