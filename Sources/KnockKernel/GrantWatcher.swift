import Foundation
import KnockCore

/// Reads what `knockc watch` reports on: the granted and banned sets, each reading compared
/// with the one before (see `GrantChanges`). It only reads; the kernel decides who gets in
/// whether or not a watcher runs.
///
/// Why reading the sets rather than NFLOG: the kernel sends no netlink event for elements
/// added from the packet path or timed out, so expiries can only be seen by reading; and one
/// mechanism for both grants and expiries keeps the events consistent with `status`, costs
/// the packet path nothing (no log statement in a knock rule), and survives a watcher
/// restart, since the sets are the truth. The price is latency up to one interval.
public final class GrantWatcher {
    private let dump: NetlinkDump
    public let table: String
    /// The live table's catalog, read again whenever the ruleset's generation moves.
    public private(set) var catalog = TableCatalog()
    private var openers: [TableCatalog.Opening: [String]] = [:]
    private var catalogGeneration: UInt32?
    /// The grants of the last reading, each with when it runs out.
    private var live: [Grant.ID: (grant: Grant, expiry: Date)] = [:]
    /// What the last full reading saw, to tell whether the next can be skipped.
    private var lastFull: Marks?
    /// How many readings found the table quiet and skipped the set dumps.
    public private(set) var skippedReadings = 0

    /// The cheap signs of change, and the grant and ban counts they stand for.
    private struct Marks {
        var generation: UInt32?
        var changes: UInt64?
        /// The soonest any grant or ban seen times out.
        var nextExpiry: Date
        var grants: [IPFamily: Int]
        var bans: [IPFamily: Int]
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
        /// True when nothing could have changed, so the sets were not read.
        public var skipped = false
    }

    public init(table: String) throws(NftError) {
        do {
            dump = try NetlinkDump()
        } catch {
            throw NftError(command: "netlink", message: error.description)
        }
        self.table = table
    }

    /// Reads the granted and banned sets, or returns nil when the table is absent (between a
    /// delete and an apply); the reading before is then kept.
    public func read(now: Date = Date()) throws(NftError) -> Reading? {
        do {
            // The sets can have changed only through a committed transaction (an apply, a
            // revoke), a grant, close or ban rule (each bumps one counter), or an element's
            // time running out. When none of these happened, three small reads replace the
            // dumps: an idle watcher costs the same with 10 or 100,000 grants.
            let generation = try dump.generation()
            let changes = try dump.counter(table: table, name: TableLayout.Names.stateChangesCounter)
            if let last = lastFull, changes != nil, last.generation == generation, last.changes == changes,
               now < last.nextExpiry {
                skippedReadings += 1
                return Reading(changes: GrantChanges(added: [], removed: []), grants: last.grants, bans: last.bans,
                               catalogChanged: false, skipped: true)
            }
            var catalogChanged = false
            if generation == nil || generation != catalogGeneration {
                // Only a transaction changes the catalog, and a transaction moves the generation.
                guard let read = try LiveStateReader(dump: dump).catalog(table: table) else { return nil }
                catalogChanged = catalogGeneration != nil && read != catalog
                catalog = read
                openers = read.openers
                catalogGeneration = generation
            }
            var nextExpiry = Date.distantFuture
            var next: [Grant.ID: (grant: Grant, expiry: Date)] = [:]
            next.reserveCapacity(live.count)
            var added: [Grant] = []
            var grants: [IPFamily: Int] = [:]
            var bans: [IPFamily: Int] = [:]
            for family in IPFamily.allCases {
                var count = 0
                let layout = TableLayout.granted(family)
                let found = try dump.forEachElement(table: table, set: layout.name) { element in
                    guard let key = layout.decode(element.key), let timeout = element.timeout, let expires = element.expires,
                          var grant = Grant(key: key, timeout: LiveStateReader.duration(timeout),
                                            expires: LiveStateReader.duration(expires)) else { return }
                    // A dump can repeat an element (see `NetlinkDump.containsElement`).
                    guard next[grant.id] == nil else { return }
                    count += 1
                    let expiry = now.addingTimeInterval(Double(expires) / 1000)
                    // Taken out of `live`: what is left there afterwards has gone.
                    if let known = live.removeValue(forKey: grant.id) {
                        var kept = known.grant
                        kept.expires = grant.expires
                        next[grant.id] = (kept, expiry)
                    } else {
                        grant.sequences = openers[TableCatalog.Opening(family: family, port: grant.port)] ?? []
                        next[grant.id] = (grant, expiry)
                        added.append(grant)
                    }
                }
                guard found else {
                    // The table went away mid-reading: keep the last reading whole.
                    live.merge(next) { kept, _ in kept }
                    return nil
                }
                grants[family] = count
                var banned = 0
                _ = try dump.forEachElement(table: table, set: TableLayout.banned(family).name) { element in
                    banned += 1
                    if let expires = element.expires { nextExpiry = min(nextExpiry, now.addingTimeInterval(Double(expires) / 1000)) }
                }
                bans[family] = banned
            }
            // What the dumps did not list and whose time has not come may only have been
            // skipped: ask the kernel for each before reporting it gone.
            var removed: [Grant] = []
            for (id, known) in live {
                let set = TableLayout.granted(id.source.family)
                if known.expiry > now, let key = set.encode(known.grant.key),
                   try dump.containsElement(table: table, set: set.name, key: key) {
                    next[id] = known
                    grants[id.source.family, default: 0] += 1
                } else {
                    var gone = known.grant
                    gone.expires = Duration(milliseconds: Int64((known.expiry.timeIntervalSince(now) * 1000).rounded(.down)))
                    removed.append(gone)
                }
            }
            live = next
            nextExpiry = next.values.reduce(nextExpiry) { min($0, $1.expiry) }
            lastFull = Marks(generation: generation, changes: changes, nextExpiry: nextExpiry, grants: grants, bans: bans)
            return Reading(changes: GrantChanges(added: added, removed: removed), grants: grants, bans: bans,
                           catalogChanged: catalogChanged)
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
}
