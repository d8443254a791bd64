import Foundation
import KnockCore
import KnockKernel

/// What `--metrics` serves. Grants, wrong knocks and bans come from the table's own counters,
/// read at each scrape, so they count what the kernel did even while no watcher ran; expiries
/// and ends are seen only by reading the sets, so the watcher counts them since it started.
public final class WatchMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var expiries: [String: Int] = [:]
    private var ends: [String: [String: Int]] = [:]
    private var grantEvents: [String: Int] = [:]
    private var activeGrants: [IPFamily: Int] = [:]
    private var activeBans: [IPFamily: Int] = [:]
    private var hooks = HookRunner.Tally()
    private var readErrors = 0

    public init() {}

    /// Records one reading's events and levels.
    public func record(_ events: [ReportedEvent], grants: [IPFamily: Int], bans: [IPFamily: Int]) {
        lock.lock()
        defer { lock.unlock() }
        for event in events {
            let sequences = event.event.sequences.isEmpty ? ["unknown"] : event.event.sequences
            for sequence in sequences {
                switch event.event.kind {
                case .grant: grantEvents[sequence, default: 0] += 1
                case .expire: expiries[sequence, default: 0] += 1
                case .end: ends[sequence, default: [:]][event.reason?.rawValue ?? "unknown", default: 0] += 1
                }
            }
        }
        activeGrants = grants
        activeBans = bans
    }

    public func recordReadError() {
        lock.lock()
        readErrors += 1
        lock.unlock()
    }

    public func record(hooks tally: HookRunner.Tally) {
        lock.lock()
        hooks = tally
        lock.unlock()
    }

    /// The metric families, with the kernel's counters as read now (by counter name).
    public func families(kernelCounters counters: [String: UInt64]) -> [MetricFamily] {
        lock.lock()
        defer { lock.unlock() }
        let names = TableLayout.Names.self
        func perSequence(_ prefix: String) -> [MetricFamily.Sample] {
            counters.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
                .map { MetricFamily.Sample([("sequence", String($0.key.dropFirst(prefix.count)))], Double($0.value)) }
        }
        func families(_ counts: [IPFamily: Int]) -> [MetricFamily.Sample] {
            IPFamily.allCases.map { MetricFamily.Sample([("family", $0.rawValue)], Double(counts[$0] ?? 0)) }
        }
        func bySequence(_ counts: [String: Int]) -> [MetricFamily.Sample] {
            counts.sorted { $0.key < $1.key }.map { MetricFamily.Sample([("sequence", $0.key)], Double($0.value)) }
        }
        return [
            MetricFamily("knockc_grants_total", .counter,
                         help: "Sequences completed, by sequence: counted by the kernel (since the table was last applied).",
                         samples: perSequence(names.grantsCounterPrefix)),
            MetricFamily("knockc_expiries_total", .counter,
                         help: "Grants that ran out, by sequence, seen by this watcher since it started.",
                         samples: bySequence(expiries)),
            MetricFamily("knockc_ends_total", .counter,
                         help: "Grants that ended early, by sequence and reason (close, revoke, apply), seen by this watcher.",
                         samples: ends.sorted { $0.key < $1.key }.flatMap { sequence, reasons in
                             reasons.sorted { $0.key < $1.key }.map { MetricFamily.Sample([("sequence", sequence), ("reason", $0.key)], Double($0.value)) }
                         }),
            MetricFamily("knockc_grant_events_total", .counter,
                         help: "Grant events this watcher reported, by sequence.",
                         samples: bySequence(grantEvents)),
            MetricFamily("knockc_closes_total", .counter,
                         help: "Close sequences completed, by sequence: counted by the kernel.",
                         samples: perSequence(names.closesCounterPrefix)),
            MetricFamily("knockc_spa_rejected_total", .counter,
                         help: "Datagrams to a sequence's spa port without a valid unused token, by sequence: counted by the kernel.",
                         samples: perSequence(names.spaRejectedCounterPrefix)),
            MetricFamily("knockc_grants_active", .gauge,
                         help: "Granted (source, port) pairs in the table now, by family.",
                         samples: families(activeGrants)),
            MetricFamily("knockc_bans_active", .gauge, help: "Banned sources in the table now, by family.",
                         samples: families(activeBans)),
            MetricFamily("knockc_bans_total", .counter,
                         help: "Packets that banned a source or renewed its ban: counted by the kernel.",
                         samples: [.init([], Double(counters[names.bansCounter] ?? 0))]),
            MetricFamily("knockc_wrong_knocks_total", .counter,
                         help: "Knocks that reset a source's progress: counted by the kernel.",
                         samples: [.init([], Double(counters[names.wrongKnocksCounter] ?? 0))]),
            MetricFamily("knockc_hook_runs_total", .counter, help: "Hook runs, by outcome.",
                         samples: [("succeeded", hooks.succeeded), ("failed", hooks.failed), ("timed_out", hooks.timedOut),
                                   ("dropped", hooks.dropped)].map { .init([("outcome", $0.0)], Double($0.1)) }),
            MetricFamily("knockc_watch_read_errors_total", .counter, help: "Readings of the table that failed.",
                         samples: [.init([], Double(readErrors))]),
        ]
    }
}
