import ArgumentParser
import Foundation
import KnockKernel
import KnockcVersion

/// `knockc`: port knocking compiled into the kernel.
@main
struct Knockc: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "knockc",
        abstract: "Port knocking compiled into one nftables table that the kernel enforces.",
        discussion: """
            A spec (YAML) names knock sequences and the ports each opens. knockc compiles it into \
            one nftables table; the kernel then tracks every knock itself, with no daemon in the \
            packet path.

            Exit codes: 0 success, 1 the spec has errors (or keygen's file exists, or the port of \
            knock --then-connect or --proxy stayed closed), 2 diff failed, 3 the kernel \
            refused the ruleset (nothing was changed), 4 a knock could not be sent, 5 an apply \
            --confirm was not confirmed and the previous table is back, 6 not permitted (needs \
            root, CAP_NET_ADMIN), 7 import printed a spec but could not translate everything, 64 bad \
            command-line usage.
            """,
        // What scripts/package built the Debian package as, or RELEASE-dev for a plain build.
        version: String(cString: knockc_version()),
        subcommands: [
            CheckCommand.self, CompileCommand.self, DiffCommand.self, ApplyCommand.self, ConfirmCommand.self,
            StatusCommand.self, RevokeCommand.self, WatchCommand.self, KnockCommand.self, UnitsCommand.self,
            KeygenCommand.self, ImportCommand.self, ScratchApplyCommand.self, RevertPendingCommand.self,
        ]
    )

    /// This knockc binary, which the throwaway namespace and the reverter run again.
    static var executable: String { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path }

    /// A kernel of its own for this binary's `scratch-apply`.
    static var throwawayNamespace: ThrowawayNamespace { ThrowawayNamespace(knockc: executable) }
}

/// Exit codes that scripts can rely on.
enum ExitCodes {
    static let specErrors = ExitCode(1)
    static let kernelRefused = ExitCode(3)
    static let knockFailed = ExitCode(4)
    /// Root (CAP_NET_ADMIN) is needed, or a file under /run/knockc may not be written.
    static let notPermitted = ExitCode(6)
    /// `import` printed a spec, but something of the other tool's configuration is not in it.
    static let translationIncomplete = ExitCode(7)

    /// A failure around the state directory: 6 when a privilege was missing, else 1.
    static func forFailure(_ error: Error) -> ExitCode {
        (error as? SystemError)?.isPermission == true ? notPermitted : ExitCode(1)
    }
}
