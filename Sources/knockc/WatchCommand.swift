import ArgumentParser
import Foundation
import KnockCore
import KnockKernel

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Report grants, expiries and early ends as JSON lines (never in the packet path).",
        discussion: """
            Reads the table's granted sets every --interval and prints one JSON object per \
            line on stdout for each change: {"event": "grant"|"expire"|"end", "source", \
            "family", "ports", "sequences", "expires_at", "time"}. "end" is a grant that went \
            before its time: a close sequence, `knockc revoke`, or an apply that dropped it. \
            A log line per event goes to stderr.

            The kernel decides who gets in; killing the watcher changes nothing for knocking. \
            On start it reads the live sets and reports nothing that already existed, and it \
            keeps working across `knockc apply`. Hooks and metrics come in a later release.
            """
    )

    @Option(help: "The table, as the spec's `table:` names it.")
    var table: String = KnockSpec.defaultTableName

    @Option(help: "How often to read the sets, as 250ms; events arrive within this much of the kernel's change.")
    var interval: String = "250ms"

    func validate() throws {
        guard NameRules.isValidTableName(table) else { throw ValidationError("'\(table)' is not a table name.") }
        guard let duration = Duration(parsing: interval), duration.milliseconds >= 10, duration <= .seconds(60) else {
            throw ValidationError("'\(interval)' is not an interval from 10ms to 60s.")
        }
    }

    func run() throws {
        let watcher: GrantWatcher
        var previous: GrantSnapshot?
        do {
            watcher = try GrantWatcher(table: table)
            previous = try watcher.snapshot()
        } catch {
            Console.error("knockc: cannot read table inet \(table): \(error)")
            throw ExitCode(1)
        }
        Console.error("knockc watch: watching table inet \(table), \(previous?.expiries.count ?? 0) grants live")
        let pause = Double(Duration(parsing: interval)!.milliseconds) / 1000
        while true {
            Thread.sleep(forTimeInterval: pause)
            let now = Date()
            guard let current = try? watcher.snapshot(now: now) else { continue }
            // A grant that merely carried over an apply keeps its key: no event.
            for event in current.events(since: previous ?? GrantSnapshot([], at: now), now: now,
                                        sequencesOpening: watcher.sequencesOpening) {
                // Unbuffered, so a pipe sees each event as it happens.
                FileHandle.standardOutput.write(Data((Self.line(event, now: now) + "\n").utf8))
                Console.error("knockc watch: \(event.kind.rawValue) \(event.source) \(event.ports.map(\.description).joined(separator: ","))")
            }
            previous = current
        }
    }

    static func line(_ event: GrantEvent, now: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let object: [String: Any] = [
            "event": event.kind.rawValue,
            "source": event.source.text,
            "family": event.family.rawValue,
            "ports": event.ports.map(\.description),
            "sequences": event.sequences,
            "expires_at": formatter.string(from: event.expiresAt),
            "time": formatter.string(from: now),
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
