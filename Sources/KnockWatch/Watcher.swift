import Foundation
import KnockCore
import KnockKernel
import Logging

/// Why a grant went: it ran out, or something ended it early.
public enum EndReason: String, Sendable {
    /// Its time was up.
    case timeout
    /// The source knocked the sequence's `close` knocks.
    case close
    /// Removed from the set by `knockc revoke` (or by hand with nft).
    case revoke
    /// An apply ended it: no sequence that opened its port still opens it.
    case apply
    /// An `open_once` grant let its one connection in.
    case used
}

/// A grant event as the watcher reports it: with the reason, for expiries and ends.
public struct ReportedEvent: Sendable {
    public var event: GrantEvent
    public var reason: EndReason?
    public var time: Date
}

/// The watcher's loop: read the sets, compare with the reading before, and report each
/// change as a JSON line, a log line, a hook run and a metric. The kernel decides who gets
/// in; everything here happens after the fact and may stop at any time without effect on
/// knocking.
public final class Watcher {
    public let table: String
    private let reader: GrantWatcher
    private let counters: KernelCounters
    private let specFile: String?
    private var spec: KnockSpec?
    private let hooks: HookRunner?
    public let metrics: WatchMetrics
    private let logger: Logger
    private let emit: (String) -> Void
    private var closeCounts: [String: UInt64] = [:]
    private var oneShotCount: UInt64 = 0
    /// When the secrets were last checked against the table, and what that found (logged
    /// once when it appears and once when it clears).
    private var secretsChecked: Date?
    private var secretFindings: [SecretCurrency.Finding] = []
    /// How often the spec's secrets are checked against the table: a changed secret file
    /// gives no notice, and clients with the new secret are refused without a word.
    public static let secretCheckInterval: TimeInterval = 60

    /// - Parameters:
    ///   - specFile: the spec whose hooks to run; read again whenever the table is replaced,
    ///     so an apply of a changed spec brings its hooks along.
    ///   - emit: receives each JSON line (stdout in `knockc watch`).
    public init(table: String, specFile: String?, hooks: HookRunner?, metrics: WatchMetrics = WatchMetrics(),
                logger: Logger, emit: @escaping (String) -> Void) throws(NftError) {
        self.table = table
        reader = try GrantWatcher(table: table)
        counters = try KernelCounters(table: table)
        self.specFile = specFile
        self.hooks = hooks
        self.metrics = metrics
        self.logger = logger
        self.emit = emit
        if specFile != nil { reloadSpec() }
    }

    /// Reads the live table once without reporting anything: what already exists when the
    /// watcher starts gives no event. Returns the number of live grants, nil without a table.
    @discardableResult
    public func start(now: Date = Date()) throws(NftError) -> Int? {
        let reading = try reader.read(now: now)
        closeCounts = closeCounters()
        oneShotCount = counters.packets()[TableLayout.Names.oneShotCounter] ?? 0
        guard let reading else { return nil }
        metrics.record([], grants: reading.grants, bans: reading.bans)
        return reading.grants.values.reduce(0, +)
    }

    /// One reading: reports what changed since the last one.
    @discardableResult
    public func poll(now: Date = Date()) -> [ReportedEvent] {
        let reading: GrantWatcher.Reading?
        do {
            reading = try reader.read(now: now)
        } catch {
            metrics.recordReadError()
            logger.warning("cannot read the table: \(error)", metadata: ["table": "\(table)"])
            return []
        }
        // No table (between a delete and an apply): keep the last reading, so grants that the
        // next table carries over give no event.
        guard let reading else { return [] }
        if reading.catalogChanged {
            logger.info("the table's sequences changed (an apply)", metadata: ["table": "\(table)"])
            if specFile != nil { reloadSpec() }
        }
        let events = reading.changes.events(now: now)
        let causes = events.contains { $0.kind == .end } ? endCauses() : EndCauses()
        let reported = events.map { ReportedEvent(event: $0, reason: reason(for: $0, reading: reading, causes: causes), time: now) }
        for event in reported {
            emit(EventLine.json(event))
            logger.info("\(event.event.kind.rawValue)", metadata: EventLine.metadata(event))
            runHooks(for: event)
        }
        metrics.record(reported, grants: reading.grants, bans: reading.bans)
        if let hooks { metrics.record(hooks: hooks.counts) }
        checkSecrets(now: now, force: reading.catalogChanged)
        return reported
    }

    /// Looks up the current window of each `spa` and `rotate` sequence of the spec (see
    /// `SecretCurrency`) every `secretCheckInterval` and after an apply, and logs an error for
    /// a secret that no longer matches the table.
    private func checkSecrets(now: Date, force: Bool) {
        guard let spec, spec.sequences.contains(where: { $0.windows != nil }) else { return }
        if !force, let last = secretsChecked, now.timeIntervalSince(last) < Self.secretCheckInterval { return }
        secretsChecked = now
        let found: [SecretCurrency.Finding]
        do {
            found = try SecretCurrency(table: table).findings(spec, now: now)
        } catch {
            logger.warning("cannot check the secrets: \(error)", metadata: ["table": "\(table)"])
            return
        }
        for finding in found where !secretFindings.contains(finding) {
            logger.error("\(finding)", metadata: ["table": "\(table)"])
        }
        if found.isEmpty, !secretFindings.isEmpty {
            logger.info("the table matches the secrets of its spa and rotate sequences again", metadata: ["table": "\(table)"])
        }
        secretFindings = found
    }

    /// Polls every `interval`, for ever; after each poll, brings `textfile` up to date. The
    /// interval runs from the start of one poll to the start of the next, so that a change
    /// waits at most one interval (plus the poll's own time) for its event, however long
    /// polls take; a poll that takes longer than the interval is followed by the next at once.
    public func run(interval: Duration, textfile: MetricsTextfile? = nil) -> Never {
        let period = Swift.Duration.milliseconds(interval.milliseconds)
        let clock = ContinuousClock()
        var textfile = textfile
        var lastError: String?
        var next = clock.now.advanced(by: period)
        while true {
            let pause = (next - clock.now).components
            Thread.sleep(forTimeInterval: Double(pause.seconds) + Double(pause.attoseconds) / 1e18)
            poll()
            // Late, the next poll comes at once, without making up for the ones missed.
            next = max(next.advanced(by: period), clock.now)
            guard var file = textfile else { continue }
            do {
                try file.update(metricsText())
                if lastError != nil { logger.info("metrics textfile written again", metadata: ["file": "\(file.path)"]) }
                lastError = nil
            } catch {
                // Once per distinct error, not once per poll.
                if lastError != error.description { logger.error("\(error)", metadata: ["file": "\(file.path)"]) }
                lastError = error.description
            }
            textfile = file
        }
    }

    /// The text of `--metrics`, with the kernel's counters read now.
    public func metricsText() -> String {
        PrometheusText.render(metrics.families(kernelCounters: counters.packets()))
    }

    /// The counters for the metrics server's thread, which must not share this one's context.
    public var kernelCounters: KernelCounters { counters }

    // MARK: Reasons and hooks

    /// What the kernel counted since the last poll that can end a grant early: close knocks
    /// by sequence, and one-shot grants used. Read once per poll, for all of its ends.
    private struct EndCauses {
        var closed: Set<String> = []
        var oneShotUsed = false
    }

    private func endCauses() -> EndCauses {
        let closes = closeCounters()
        let used = counters.packets()[TableLayout.Names.oneShotCounter] ?? 0
        defer {
            closeCounts = closes
            oneShotCount = used
        }
        return EndCauses(closed: Set(closes.filter { $0.value > closeCounts[$0.key, default: 0] }.keys),
                         oneShotUsed: used > oneShotCount)
    }

    private func reason(for event: GrantEvent, reading: GrantWatcher.Reading, causes: EndCauses) -> EndReason? {
        switch event.kind {
        case .grant: return nil
        case .expire: return .timeout
        case .end:
            // An apply ends a grant when no sequence that opened its port still opens it.
            if reading.catalogChanged,
               event.ports.allSatisfy({ Set(reader.sequencesOpening(event.family, $0)).isDisjoint(with: event.sequences) }) {
                return .apply
            }
            // A close knock bumps its sequence's counter in the same rule that deletes the
            // grant, and a one-shot grant's connection bumps `once_used`; a revoke bumps nothing.
            if !causes.closed.isDisjoint(with: event.sequences) { return .close }
            return causes.oneShotUsed ? .used : .revoke
        }
    }

    /// Close counters by sequence name.
    private func closeCounters() -> [String: UInt64] {
        let prefix = TableLayout.Names.closesCounterPrefix
        var result: [String: UInt64] = [:]
        for (name, packets) in counters.packets() where name.hasPrefix(prefix) {
            result[String(name.dropFirst(prefix.count))] = packets
        }
        return result
    }

    private func runHooks(for reported: ReportedEvent) {
        guard let hooks, let spec else { return }
        let event = reported.event
        let kind: HookKind = event.kind == .grant ? .grant : .expire
        // The kernel does not record which sequence granted; every sequence that opens these
        // ports is a candidate. Each distinct command runs once, naming its sequences.
        var commands: [HookCommand: [String]] = [:]
        let candidates = spec.sequences.filter { event.sequences.contains($0.name) }
        if candidates.isEmpty {
            if let command = kind == .grant ? spec.hooks.onGrant : spec.hooks.onExpire { commands[command] = [] }
        }
        for sequence in candidates {
            if let command = spec.hook(kind, for: sequence) { commands[command, default: []].append(sequence.name) }
        }
        for (command, sequences) in commands.sorted(by: { $0.value.joined() < $1.value.joined() }) {
            var environment = EventLine.environment(reported)
            environment["KNOCKC_SEQUENCE"] = sequences.joined(separator: " ")
            environment["KNOCKC_TABLE"] = table
            hooks.submit(.init(command: command, environment: environment,
                               label: "\(kind == .grant ? "on_grant" : "on_expire") for \(event.source)"))
        }
    }

    private func reloadSpec() {
        guard let specFile else { return }
        // The one spec reader: bounded, and it says why a file is not a spec.
        let (loaded, diagnostics) = Pipeline.check(file: specFile)
        guard let loaded else {
            logger.error("the spec has errors; hooks keep their last version",
                         metadata: ["spec": "\(specFile)", "first": "\(diagnostics.first.map { "\($0)" } ?? "")"])
            return
        }
        if loaded.tableName != table {
            logger.warning("the spec names table \(loaded.tableName), the watcher reads \(table)")
        }
        spec = loaded
    }
}

/// The table's named counters, behind a lock: the metrics thread reads them while the loop
/// reads the close counters.
public final class KernelCounters: @unchecked Sendable {
    private let lock = NSLock()
    private let reader: CounterReader

    public init(table: String) throws(NftError) {
        reader = try CounterReader(table: table)
    }

    /// Packets per counter name; empty when the table is absent or cannot be read.
    public func packets() -> [String: UInt64] {
        lock.lock()
        defer { lock.unlock() }
        return (try? reader.packets()) ?? [:]
    }
}
