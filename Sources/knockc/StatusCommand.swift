import ArgumentParser
import Foundation
import KnockCore
import KnockKernel

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the live table's grants, knocks in progress and bans.",
        discussion: """
            Reads the table's sets straight from the kernel over netlink, in the current \
            network namespace, and changes nothing. Needs CAP_NET_ADMIN (root).

            grants: each source and guarded port it may reach, the sequences that open that \
            port, and the time left. The kernel stores a grant as source, protocol and port \
            only, so SEQUENCES lists every sequence of the live table whose last knock opens \
            the port (read from the table's catalog, the sets sequences and openings), not \
            necessarily the one that was \
            knocked; "-" when no sequence of the table opens it any more (a grant kept from \
            an earlier spec).

            knocks in progress: each source part-way through a sequence, the knocks it has \
            made out of the sequence's total (from the catalog; "-" and "?" for a sequence \
            the table no longer has), and the time left before the kernel forgets them \
            (the step timeout).

            bans: sources banned by wrong knocks or a decoy, and the time left. A ban of a \
            source in the top-level allow list is marked "(allowed: ban has no effect)": that \
            source reaches every guarded port without knocking. Bans are triggered by packets \
            whose source can be forged, so a ban does not show that its source misbehaved.

            The kernel gives times left to the millisecond; they are shown in whole seconds, \
            rounded down, and an element with less than a second left is not shown. With \
            --json, prints one JSON object: table, grants \
            (source, family, port, sequences, timeout_seconds, expires_in_seconds), progress \
            (source, family, sequence, stage, of, close: true for a sequence's close knocks, \
            expires_in_seconds), bans (source, \
            family, expires_in_seconds, effective: false for an allowed source) and \
            pending_confirm ({"reverts_in_seconds": N} while an apply --confirm waits, else null).

            Exit codes: 0 the table was read, 1 there is no such table or it could not be read.
            """
    )

    @Option(help: "The nftables table (family inet) to read.")
    var table: String = "knockc"

    @Flag(help: "Print one JSON object instead of the tables.")
    var json = false

    func validate() throws {
        guard NameRules.isValidTableName(table) else {
            throw ValidationError("'\(table)' is not a table name: a letter, then letters, digits, '-' or '_', at most 32.")
        }
    }

    func run() throws {
        let revertsIn = reportPendingConfirm()
        let status: TableStatus?
        do {
            status = try StatusReader().readStatus(table: table)
        } catch {
            Console.error("knockc: cannot read table inet \(table): \(error)")
            throw ExitCodes.tableUnavailable
        }
        guard let status else {
            Console.error("no table inet \(table) in this network namespace")
            throw ExitCodes.tableUnavailable
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(StatusJSON(status: status, revertsIn: revertsIn)), as: UTF8.self))
        } else {
            print(Self.render(status), terminator: "")
        }
    }

    /// A pending `apply --confirm` is said on stderr, and one whose reverter died is
    /// recovered here, so that the state never claims a revert nobody will do. Returns the
    /// seconds until the pending apply reverts, nil when none is pending.
    private func reportPendingConfirm() -> Int? {
        guard let store = try? ConfirmStore(table: table, root: ConfirmSupport.root) else { return nil }
        let pending = PendingConfirm(store: store)
        ConfirmSupport.report(pending.recoverOrphan(), table: table)
        guard let record = pending.livePending() else { return nil }
        let seconds = pending.secondsLeft(record)
        Console.error("knockc: an apply --confirm of table inet \(table) is waiting for confirmation: the previous table comes back in \(seconds)s unless `knockc confirm` runs")
        return seconds
    }

    /// `--json`: the table's status and `pending_confirm`, `{"reverts_in_seconds": N}` while
    /// an apply --confirm waits and null otherwise, so a script (the Ansible module) need not
    /// read the stderr line.
    struct StatusJSON: Encodable {
        let status: TableStatus
        let revertsIn: Int?

        private enum Key: String, CodingKey { case pendingConfirm = "pending_confirm", revertsInSeconds = "reverts_in_seconds" }

        func encode(to encoder: Encoder) throws {
            try status.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            if let revertsIn {
                var pending = container.nestedContainer(keyedBy: Key.self, forKey: .pendingConfirm)
                try pending.encode(revertsIn, forKey: .revertsInSeconds)
            } else {
                try container.encodeNil(forKey: .pendingConfirm)
            }
        }
    }

    /// The human form: one section per kind, with aligned columns.
    static func render(_ status: TableStatus) -> String {
        var out = "table inet \(status.table)\n\n"
        if status.grants.isEmpty {
            out += "grants: none\n"
        } else {
            out += "grants\n" + columns([["SOURCE", "PORT", "SEQUENCES", "LEFT"]] + status.grants.map {
                [$0.source.text, $0.port.description, $0.sequences.isEmpty ? "-" : $0.sequences.joined(separator: ","),
                 "\(timeLeft($0.expires)) of \($0.timeout)"]
            })
        }
        out += "\n"
        if status.progress.isEmpty {
            out += "knocks in progress: none\n"
        } else {
            out += "knocks in progress\n" + columns([["SOURCE", "SEQUENCE", "STAGE", "LEFT"]] + status.progress.map {
                [$0.source.text, ($0.sequence ?? "-") + ($0.closing ? " (close)" : ""), "\($0.stage) of \($0.knocks.map(String.init) ?? "?")",
                 timeLeft($0.expires)]
            })
        }
        out += "\n"
        if status.bans.isEmpty {
            out += "bans: none\n"
        } else {
            out += "bans\n" + columns([["SOURCE", "LEFT"]] + status.bans.map {
                [$0.source.text, timeLeft($0.expires) + ($0.effective ? "" : "  \(Self.ineffectiveBan)")]
            })
        }
        return out
    }

    /// Beside a ban that cannot take effect (`Ban.effective`).
    static let ineffectiveBan = "(allowed: ban has no effect)"

    /// Rows with each column padded to its widest cell, indented by two spaces.
    static func columns(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            return "  " + cells.joined(separator: "  ") + "\n"
        }.joined()
    }

    /// `59m59s`, `1h0m5s`, `4s`: whole seconds, largest units first.
    static func timeLeft(_ duration: KnockCore.Duration) -> String {
        var seconds = duration.milliseconds / 1000
        var text = ""
        for (unit, suffix) in [(Int64(86_400), "d"), (3_600, "h"), (60, "m")] where seconds >= unit || !text.isEmpty {
            text += "\(seconds / unit)\(suffix)"
            seconds %= unit
        }
        return text + "\(seconds)s"
    }
}

extension ExitCodes {
    /// `status`: the table does not exist in this network namespace, or could not be read.
    static let tableUnavailable = ExitCode(1)
}
