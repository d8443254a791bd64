import Foundation

/// Runs knockc itself in a fresh user and network namespace (`unshare -rn`): a kernel of its
/// own, empty, gone when the process ends. No root needed, and the host's ruleset is never
/// touched. `check --kernel` and `diff` use it to let the real kernel read a compiled table.
enum ThrowawayNamespace {
    static let unshare = "/usr/bin/unshare"

    static func runKnockc(_ arguments: [String]) throws -> Subprocess.Result {
        let knockc = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        // As root, a network namespace alone: inside a user namespace the netlink socket
        // cannot be given a buffer beyond net.core.wmem_max, and a large table does not fit.
        let namespaces = geteuid() == 0 ? ["--net"] : ["--user", "--map-root-user", "--net"]
        var result = try Subprocess.run(unshare, namespaces + ["--", knockc] + arguments)
        if result.status != 0, geteuid() != 0, result.errors.contains("Message too long") {
            result.errors += "\n(an unprivileged user's netlink socket cannot carry a table this large in one "
                + "transaction; run `knockc check --kernel` as root, which still touches only a throwaway namespace)"
        }
        return result
    }

    /// The namespace could not be made, or knockc could not be started in it: the kernel never
    /// saw the ruleset, so this is no verdict on it.
    struct SetupFailure: Error, Equatable, CustomStringConvertible {
        /// unshare's own words, such as `unshare: unshare failed: Operation not permitted`.
        var reason: String

        var description: String { "cannot create a throwaway network namespace: \(reason)" }
    }

    /// Tells a failure of `unshare` itself from a failure of the knockc it runs. unshare
    /// reports its own failures on stderr as `unshare: ...` and exits 1 (the namespace or the
    /// uid map could not be made), 126 or 127 (knockc could not be executed); knockc's own
    /// messages never start that way.
    static func setupFailure(of result: Subprocess.Result) -> SetupFailure? {
        guard [1, 126, 127].contains(result.status) else { return nil }
        let errors = result.errors.trimmingCharacters(in: .whitespacesAndNewlines)
        guard errors.hasPrefix("unshare: ") else { return nil }
        return SetupFailure(reason: errors)
    }
}
