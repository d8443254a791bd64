import Foundation

/// Runs knockc itself in a fresh user and network namespace (`unshare -rn`): a kernel of its
/// own, empty, gone when the process ends. No root needed, and the host's ruleset is never
/// touched. `check --kernel` and `diff` use it to let the real kernel read a compiled table.
enum ThrowawayNamespace {
    static func runKnockc(_ arguments: [String]) throws -> Subprocess.Result {
        let knockc = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        // As root, a network namespace alone: inside a user namespace the netlink socket
        // cannot be given a buffer beyond net.core.wmem_max, and a large table does not fit.
        let namespaces = geteuid() == 0 ? ["--net"] : ["--user", "--map-root-user", "--net"]
        var result = try Subprocess.run("/usr/bin/unshare", namespaces + ["--", knockc] + arguments)
        if result.status != 0, geteuid() != 0, result.errors.contains("Message too long") {
            result.errors += "\n(an unprivileged user's netlink socket cannot carry a table this large in one "
                + "transaction; run `knockc check --kernel` as root, which still touches only a throwaway namespace)"
        }
        return result
    }
}
