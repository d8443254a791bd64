import ArgumentParser
import Foundation
import KnockKernel

/// The pieces `apply`, `confirm`, `status` and the reverter share around `PendingConfirm`:
/// where its files live, the privilege check, and how a recovery is told.
enum ConfirmSupport {
    /// `/run/knockc`, or `KNOCKC_RUN_DIR` (tests keep their records apart with it).
    static var root: String { ProcessInfo.processInfo.environment["KNOCKC_RUN_DIR"] ?? ConfirmStore.defaultRoot }

    /// The protocol for `table` in this network namespace; a failure names the file and why.
    static func pending(table: String) throws -> PendingConfirm {
        do {
            return PendingConfirm(store: try ConfirmStore(table: table, root: root))
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCodes.forFailure(error)
        }
    }

    /// Tells what `recoverOrphan` did, on stderr: it changed the kernel, so it is never silent.
    static func report(_ recovery: PendingConfirm.Recovery, table: String) {
        switch recovery {
        case .nothing:
            break
        case .reverted(_, let why):
            Console.error("knockc: the pending apply --confirm of table inet \(table) ended: \(why), so the previous table was restored now. Run the apply --confirm again if you still want the new spec.")
        case .revertFailed(_, let why):
            Console.error("knockc: the pending apply --confirm of table inet \(table) ended: \(why). Check the table with `knockc diff` and apply the spec you want.")
        case .droppedFromEarlierBoot:
            Console.error("knockc: dropped a pending apply --confirm of table inet \(table) recorded before a reboot")
        case .droppedUnarmed:
            Console.error("knockc: dropped a pending apply --confirm of table inet \(table) that ended before installing anything; the table was not changed")
        }
    }
}

/// CAP_NET_ADMIN, which every change to the kernel's tables needs. Checked before anything is
/// read or written, so a non-root run says so instead of "the kernel refused the ruleset".
enum Privilege {
    static var hasNetAdmin: Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) else {
            return geteuid() == 0
        }
        return mask & (1 << 12) != 0
    }

    static func requireNetAdmin(_ command: String) throws {
        guard hasNetAdmin else {
            Console.error("knockc: \(command) needs root (CAP_NET_ADMIN) to change the kernel's tables; nothing was changed")
            throw ExitCodes.notPermitted
        }
    }
}
