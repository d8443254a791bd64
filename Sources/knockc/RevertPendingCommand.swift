import ArgumentParser
import Foundation
import Glibc
import KnockKernel

/// The detached half of `apply --confirm`: started in a session of its own, so it outlives
/// the terminal and the SSH connection that ran the apply. It takes the record over before
/// the new table is installed, and at the deadline, unless the apply was confirmed or ended,
/// restores the previous table. Asked to stop (SIGTERM, SIGHUP, SIGINT: a logout, a session
/// being torn down, a bare `kill`), it restores the previous table at once instead of dying
/// with the new one live. Hidden from help.
struct RevertPendingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert-pending",
        abstract: "Restore the previous table at the deadline unless confirmed.",
        shouldDisplay: false
    )

    @Option var table: String

    func run() throws {
        // Caught, and unblocked: a mask or an ignore inherited from whoever started the apply
        // (a test runner's thread, nohup) must not make the request to stop go unheard.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGHUP, SIGINT] {
            Glibc.signal(signal) { _ in stopRequested = 1 }
            sigaddset(&signals, signal)
        }
        sigprocmask(SIG_UNBLOCK, &signals, nil)
        let pending = try ConfirmSupport.pending(table: table)
        guard let reverter = try pending.takeOver() else { return }
        pending.revert(as: reverter, interrupted: { stopRequested != 0 }) { usleep(UInt32($0 / 1000)) }
    }
}

/// Set from the signal handler, read by the reverter's loop: a sig_atomic_t in spirit.
nonisolated(unsafe) private var stopRequested: Int32 = 0
