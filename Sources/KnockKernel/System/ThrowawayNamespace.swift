import Foundation
import Glibc

/// Runs knockc itself in a fresh user and network namespace (`unshare -rn`): a kernel of its
/// own, empty, gone when the process ends. No root needed, and the host's ruleset is never
/// touched. `check --kernel`, `diff` and `apply --confirm` use it to let the real kernel read
/// a compiled table.
public struct ThrowawayNamespace: Sendable {
    static let unshare = "/usr/bin/unshare"

    /// The knockc executable to run inside (its hidden `scratch-apply` does the work). A value,
    /// not this process's own path, so that a library caller names the binary it built.
    public let knockc: String

    public init(knockc: String) {
        self.knockc = knockc
    }

    /// Why a spec's table could not be loaded into a throwaway namespace.
    public enum LoadFailure: Error, Sendable, CustomStringConvertible {
        /// unshare could not be started at all.
        case cannotRun(String)
        /// The namespace could not be made, so the kernel never saw the table.
        case setup(SetupFailure)
        /// The kernel refused the table (or knockc, inside, the spec): its stderr as it was.
        case refused(String)

        public var description: String {
            switch self {
            case .cannotRun(let reason): reason
            case .setup(let failure): failure.description
            case .refused(let errors): "the kernel refused the compiled ruleset:\n\(errors)"
            }
        }
    }

    /// Loads the table the spec at `specPath` compiles to into a namespace of its own and, with
    /// `list`, returns the table as that kernel lists it ("" without).
    public func load(specPath: String, list: Bool = false) throws(LoadFailure) -> String {
        let result: Subprocess.Result
        do {
            result = try run(["scratch-apply", specPath] + (list ? ["--list"] : []))
        } catch {
            throw .cannotRun(error.description)
        }
        if let failure = Self.setupFailure(of: result) { throw .setup(failure) }
        guard result.status == 0 else { throw .refused(result.errors) }
        return result.output
    }

    private func run(_ arguments: [String]) throws(Subprocess.SpawnFailure) -> Subprocess.Result {
        // As root, a network namespace alone: inside a user namespace the netlink socket
        // cannot be given a buffer beyond net.core.wmem_max, and a large table does not fit.
        let namespaces = geteuid() == 0 ? ["--net"] : ["--user", "--map-root-user", "--net"]
        var result = try Subprocess.run(Self.unshare, namespaces + ["--", knockc] + arguments)
        if result.status != 0, geteuid() != 0, result.errors.contains("Message too long") {
            result.errors += "\n(an unprivileged user's netlink socket cannot carry a table this large in one "
                + "transaction; run `knockc check --kernel` as root, which still touches only a throwaway namespace)"
        }
        return result
    }

    /// The namespace could not be made, or knockc could not be started in it: the kernel never
    /// saw the ruleset, so this is no verdict on it.
    public struct SetupFailure: Error, Equatable, Sendable, CustomStringConvertible {
        /// unshare's own words, such as `unshare: unshare failed: Operation not permitted`.
        public var reason: String

        public var description: String { "cannot create a throwaway network namespace: \(reason)" }
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
