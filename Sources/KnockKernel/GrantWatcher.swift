import Foundation
import KnockCore

/// Reads what `knockc watch` reports on: the granted and banned sets, each reading compared
/// with the one before (see `GrantChanges`). It only reads; the kernel decides who gets in
/// whether or not a watcher runs.
///
/// Why reading the sets rather than NFLOG: the kernel sends no netlink event for elements
/// added from the packet path or timed out, so expiries can only be seen by reading; and one
/// mechanism for both grants and expiries keeps the events consistent with `status`, costs
/// the packet path nothing but a mark in the fresh set when a knock grants or closes, and
/// survives a watcher restart, since the sets are the truth. The price is latency up to one
/// interval.
///
/// A reading does work in proportion to what changed, not to how many grants there are:
/// - It always reads the ruleset's generation, the `state_changes` and `bans` counters, and
///   what transactions announced (`TransactionNotices`). When nothing moved and no grant or
///   ban it knows has run out, that is all: an idle watcher costs the same with 10 or 100,000
///   grants.
/// - A knock that grants, renews or closes marks its keys in the fresh sets and then bumps
///   `state_changes`; the reading then reads the fresh sets (the last 30 s of such knocks)
///   and asks the kernel about each key marked since the reading before.
/// - A transaction (a revoke, `nft add element`) names each element it added or deleted; the
///   reading asks about those.
/// - It knows when each grant runs out, and asks about those whose time has come: gone is an
///   expiry, still there is a renewal.
/// - Every grant is read (a full reading) only the first time, after a transaction that
///   changed more than elements (an apply), when notifications were lost or late, when the
///   fresh sets may have forgotten a mark (no reading for `freshFor` less a margin) or are
///   missing (a table written by an older knockc), and every `fullReadingEvery` in case
///   anything was missed. At 100,000 grants a full reading costs the kernel most of a second: a dump comes
///   in batches, and each batch walks the set from its start.
public final class GrantWatcher {
    private let dump: NetlinkDump
    /// Nil when the kernel refused the subscription; then any transaction means a full reading.
    private let notices: TransactionNotices?
    public let table: String
    /// The live table's catalog, read again by each full reading.
    public private(set) var catalog = TableCatalog()
    private var openers: [TableCatalog.Opening: [String]] = [:]
    private var known = KnownGrants()
    /// When each ban runs out, in order, per family.
    private var banExpiries: [IPFamily: [Date]] = [:]
    private var last: Marks?
    /// The latest generation whose transactions have all been taken into account.
    private var heardGeneration: UInt32?
    /// How many readings found the table quiet and read no set.
    public private(set) var skippedReadings = 0
    /// How many readings read every grant.
    public private(set) var fullReadings = 0

    /// A safety net: a full reading at least this often, whatever else happened.
    public static let fullReadingEvery: TimeInterval = 300
    /// Allowance for a fresh mark made about when the reading before read the counters.
    static let freshSlack: TimeInterval = 1

    /// What the reading before saw, to tell what moved since.
    private struct Marks {
        var generation: UInt32?
        var changes: UInt64?
        var banChanges: UInt64?
        var time: Date
        var fullReading: Date
        /// The soonest any grant or ban known runs out.
        var nextExpiry: Date
    }

    /// One reading of the live table, compared with the one before.
    public struct Reading: Sendable {
        public var changes: GrantChanges
        /// Granted (source, port) pairs now, per family.
        public var grants: [IPFamily: Int]
        /// Banned sources now, per family.
        public var bans: [IPFamily: Int]
        /// True when the catalog changed (an apply) since the reading before.
        public var catalogChanged: Bool
        /// True when nothing could have changed, so no set was read.
        public var skipped = false
        /// True when every grant was read, not only what changed.
        public var full = false
    }

    public init(table: String) throws(NftError) {
        dump = try NetlinkDump.opened()
        // Before the first reading, so that no transaction after it goes unheard.
        notices = try? TransactionNotices(table: table)
        self.table = table
    }

    /// Reads the table, or returns nil when it is absent (between a delete and an apply); the
    /// reading before is then kept. The first reading takes what exists as the baseline and
    /// reports no changes.
    public func read(now: Date = Date()) throws(NftError) -> Reading? {
        do {
            let generation = try dump.generation()
            let changes = try dump.counter(table: table, name: TableLayout.Names.stateChangesCounter)
            let banChanges = try dump.counter(table: table, name: TableLayout.Names.bansCounter)
            var heard = Heard()
            let complete = try listen(until: generation, into: &heard)
            guard let last, complete, !heard.other, changes != nil, notices != nil || generation == last.generation,
                  now.timeIntervalSince(last.fullReading) < Self.fullReadingEvery else {
                return try fullReading(now: now, generation: generation, changes: changes, banChanges: banChanges)
            }
            let knocked = changes != last.changes
            let bansMoved = banChanges != last.banChanges || heard.bans || (banChanges == nil && knocked)
            if !knocked, !bansMoved, heard.grants.isEmpty, now < last.nextExpiry {
                skippedReadings += 1
                self.last?.time = now
                self.last?.generation = generation
                return Reading(changes: GrantChanges(added: [], removed: []), grants: known.counts, bans: banCounts(now),
                               catalogChanged: false, skipped: true)
            }
            var asked = heard.grants
            if knocked {
                // The marks made since the reading before; older ones were looked at then.
                guard now.timeIntervalSince(last.time) < Double(TableLayout.freshFor.milliseconds) / 1000 - 5 * Self.freshSlack,
                      try readFresh(since: last.time.addingTimeInterval(-Self.freshSlack), now: now, into: &asked) else {
                    return try fullReading(now: now, generation: generation, changes: changes, banChanges: banChanges)
                }
            }
            let (due, next) = known.due(at: now)
            asked.formUnion(due)
            var nextExpiry = next
            var added: [Grant] = []
            var removed: [Grant] = []
            for id in asked {
                if let entry = try ask(id, now: now, isNew: &added) {
                    nextExpiry = min(nextExpiry, entry.expiry)
                } else if let index = known.index(of: id) {
                    removed.append(known.remove(at: index).grant(at: now))
                }
            }
            if bansMoved { try readBans(now: now) }
            self.last = Marks(generation: generation, changes: changes, banChanges: banChanges, time: now,
                              fullReading: last.fullReading, nextExpiry: min(nextExpiry, nextBanExpiry(now)))
            return Reading(changes: GrantChanges(added: added, removed: removed), grants: known.counts, bans: banCounts(now),
                           catalogChanged: false)
        } catch let error as NetlinkDump.Failure {
            throw NftError(command: "netlink dump of table inet \(table)", message: error.description)
        } catch let error as NftError {
            throw error
        } catch {
            throw NftError(command: "read table inet \(table)", message: "\(error)")
        }
    }

    /// The sequences of the live table that open `port` in `family`.
    public func sequencesOpening(_ family: IPFamily, _ port: TransportPort) -> [String] {
        openers[TableCatalog.Opening(family: family, port: port)] ?? []
    }

    // MARK: What changed

    /// What transactions announced since the reading before.
    private struct Heard {
        /// Grants a transaction added or deleted.
        var grants: Set<Grant.ID> = []
        /// A transaction added or deleted a ban.
        var bans = false
        /// A transaction changed more than elements, or an element of a set other than the
        /// granted and banned ones that describes the table (the catalog, the ports).
        var other = false
    }

    /// Takes in every notification queued. False when they cannot be relied on: some were
    /// lost, or the generation moved on and its notifications did not arrive within 100 ms.
    /// Without notifications, true: the caller compares generations.
    private func listen(until generation: UInt32?, into heard: inout Heard) throws(NetlinkDump.Failure) -> Bool {
        guard let notices else { return true }
        func take(_ notice: TransactionNotices.Notice) {
            switch notice {
            case .generation(let id):
                if heardGeneration.map({ Int32(bitPattern: id &- $0) > 0 }) ?? true { heardGeneration = id }
            case .element(let set, let key):
                if let family = IPFamily.allCases.first(where: { TableLayout.Names.granted($0) == set }) {
                    if let id = TableLayout.granted(family).decodeGrant(key) { heard.grants.insert(id) }
                } else if IPFamily.allCases.contains(where: { TableLayout.Names.banned($0) == set }) {
                    heard.bans = true
                } else if !Self.knockSets.contains(set) {
                    heard.other = true
                }
            case .other:
                heard.other = true
            }
        }
        var complete = try notices.drain(take)
        // The kernel shows a transaction's generation a moment before it sends what changed.
        // (Before the first reading there is nothing to wait for: it reads every grant.)
        var waited: Int32 = 0
        while complete, last != nil, let generation, !hasHeard(generation), waited < 100 {
            if notices.wait(milliseconds: 10) { complete = try notices.drain(take) }
            waited += 10
        }
        return complete && generation.map(hasHeard) ?? true
    }

    /// The sets only knocks change, whose elements a transaction may move (an apply that
    /// retags knocks in progress) without changing anything the watcher reports.
    private static let knockSets = Set(IPFamily.allCases.flatMap { family in
        [TableLayout.started(family), TableLayout.progress(family), TableLayout.fresh(family)].map(\.name)
    })

    private func hasHeard(_ generation: UInt32) -> Bool {
        heardGeneration.map { Int32(bitPattern: $0 &- generation) >= 0 } ?? false
    }

    /// Adds to `asked` each key marked in the fresh sets since `since`. False when a fresh
    /// set is missing (a table from an older knockc, or none).
    private func readFresh(since: Date, now: Date, into asked: inout Set<Grant.ID>) throws(NetlinkDump.Failure) -> Bool {
        let window = now.timeIntervalSince(since)
        for family in IPFamily.allCases {
            let layout = TableLayout.fresh(family)
            let found = try dump.forEachElement(table: table, set: layout.name) { element in
                guard let timeout = element.timeout, let expires = element.expires, let id = layout.decodeGrant(element.key)
                else { return }
                // The kernel counts down from the last mark: this long ago.
                if Double(Int64(clamping: timeout) - Int64(clamping: expires)) / 1000 <= window { asked.insert(id) }
            }
            guard found else { return false }
        }
        return true
    }

    /// Asks the kernel about one grant and takes in the answer (see `see`); nil when it does
    /// not hold it, or holds it without a timeout.
    private func ask(_ id: Grant.ID, now: Date, isNew added: inout [Grant]) throws(NetlinkDump.Failure) -> KnownGrants.Entry? {
        let layout = TableLayout.granted(id.source.family)
        guard let key = layout.encode(id.key), let element = try dump.element(table: table, set: layout.name, key: key)
        else { return nil }
        return see(id, timeout: element.timeout, expires: element.expires, now: now, isNew: &added)
    }

    /// Takes in a grant the kernel holds with `timeout` and `expires` (milliseconds) left at
    /// `now`: a known one gets its new time (a renewal), a new one is added and appended to
    /// `added`. Nil for an element without a timeout, which no knock writes: not a grant that
    /// runs out, and so not one the watcher follows.
    @discardableResult
    private func see(_ id: Grant.ID, timeout: UInt64?, expires: UInt64?, now: Date, isNew added: inout [Grant],
                     report: Bool = true) -> KnownGrants.Entry? {
        guard let timeout, let expires else { return nil }
        let expiry = now.addingTimeInterval(Double(expires) / 1000)
        if let index = known.index(of: id) {
            var entry = known[index]
            entry.expiry = expiry
            entry.timeout = LiveStateReader.duration(timeout)
            entry.listed = true
            known[index] = entry
            return entry
        }
        let entry = KnownGrants.Entry(
            id: id, listed: true, expiry: expiry, timeout: LiveStateReader.duration(timeout),
            sequences: openers[TableCatalog.Opening(family: id.source.family, port: id.port)] ?? [])
        known.insert(entry)
        if report { added.append(entry.grant(at: now)) }
        return entry
    }

    // MARK: Full reading

    /// Reads the catalog and every grant and ban, and compares with what was known.
    private func fullReading(now: Date, generation: UInt32?, changes: UInt64?, banChanges: UInt64?) throws -> Reading? {
        guard let read = try LiveStateReader(dump: dump).catalog(table: table) else { return nil }
        let first = last == nil
        let catalogChanged = !first && read != catalog
        catalog = read
        openers = read.openers
        known.unlistAll()
        var added: [Grant] = []
        for family in IPFamily.allCases {
            let layout = TableLayout.granted(family)
            let found = try dump.forEachElement(table: table, set: layout.name) { element in
                guard let id = layout.decodeGrant(element.key) else { return }
                // A dump can repeat an element (see `NetlinkDump.element`).
                if let index = known.index(of: id), known[index].listed { return }
                see(id, timeout: element.timeout, expires: element.expires, now: now, isNew: &added, report: !first)
            }
            guard found else {
                // The table went away mid-reading: forget what this reading added, so that the
                // next reading finds and reports it.
                for grant in added {
                    if let index = known.index(of: grant.id) { known.remove(at: index) }
                }
                return nil
            }
        }
        // What the dumps did not list and whose time has not come may only have been
        // skipped: ask the kernel for each before reporting it gone.
        var removed: [Grant] = []
        for id in known.unlisted {
            guard let index = known.index(of: id) else { continue }
            if known[index].expiry > now, try ask(id, now: now, isNew: &added) != nil { continue }
            removed.append(known.remove(at: index).grant(at: now))
        }
        try readBans(now: now)
        fullReadings += 1
        if let generation, !hasHeard(generation) { heardGeneration = generation }
        last = Marks(generation: generation, changes: changes, banChanges: banChanges, time: now, fullReading: now,
                     nextExpiry: min(known.due(at: now).next, nextBanExpiry(now)))
        return Reading(changes: GrantChanges(added: added, removed: removed), grants: known.counts, bans: banCounts(now),
                       catalogChanged: catalogChanged, full: true)
    }

    // MARK: Bans

    /// Reads when each ban runs out. Only counts are reported, so between readings they are
    /// counted down from these times.
    private func readBans(now: Date) throws(NetlinkDump.Failure) {
        for family in IPFamily.allCases {
            var expiries: [Date] = []
            _ = try dump.forEachElement(table: table, set: TableLayout.banned(family).name) { element in
                expiries.append(element.expires.map { now.addingTimeInterval(Double($0) / 1000) } ?? .distantFuture)
            }
            banExpiries[family] = expiries.sorted()
        }
    }

    private func banCounts(_ now: Date) -> [IPFamily: Int] {
        banExpiries.mapValues { expiries in expiries.count - expiries.partitioningIndex { $0 > now } }
    }

    private func nextBanExpiry(_ now: Date) -> Date {
        banExpiries.values.compactMap { expiries in expiries.first { $0 > now } }.min() ?? .distantFuture
    }
}

extension Array {
    /// The index of the first element for which `belongs` holds, in an array where it holds for
    /// a suffix.
    fileprivate func partitioningIndex(where belongs: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if belongs(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
