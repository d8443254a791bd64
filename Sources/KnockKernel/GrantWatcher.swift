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
    private var tableHandle: UInt64?
    private var opening: [Opening: Set<String>] = [:]
    /// The grants of the last reading, by the kernel's bytes, each with its spelled-out key:
    /// a reading formats only the grants that are new.
    private var live: [RawGrant: TimedGrant] = [:]
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
        /// True when the table was replaced (an apply) since the reading before.
        public var tableReplaced: Bool
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
            // Every apply creates the table anew, with a new handle: a cheap way to notice one.
            guard let handle = try dump.tableHandle(table) else { return nil }
            let replaced = tableHandle != nil && handle != tableHandle
            if handle != tableHandle {
                // Learn again which sequences open which ports. The rules are read only now,
                // without set contents, since the table's listing can be large; and through a
                // context of its own, freed at once: libnftables keeps what a listing fetched
                // (every grant included) in its context's cache, 2 KiB a grant.
                tableHandle = handle
                opening = try NftContext(output: .json).listTable(table, elements: false)
                    .map { KnockRuleSummary.parse($0).opening } ?? [:]
            }
            // The sets can have changed only through a committed transaction (an apply, a
            // revoke), a grant, close or ban rule (each bumps one counter), or an element's
            // time running out. When none of these happened, three small reads replace the
            // dumps: an idle watcher costs the same with 10 or 100,000 grants.
            let generation = try dump.generation()
            let changes = try dump.counter(table: table, name: RulesetLowering.Names.stateChangesCounter)
            if !replaced, let last = lastFull, changes != nil, last.generation == generation, last.changes == changes,
               now < last.nextExpiry {
                skippedReadings += 1
                return Reading(changes: GrantChanges(added: [], removed: []), grants: last.grants, bans: last.bans,
                               tableReplaced: false, skipped: true)
            }
            var nextExpiry = Date.distantFuture
            var next: [RawGrant: TimedGrant] = [:]
            next.reserveCapacity(live.count)
            var added: [TimedGrant] = []
            var grants: [IPFamily: Int] = [:]
            var bans: [IPFamily: Int] = [:]
            for family in IPFamily.allCases {
                var count = 0
                let found = try dump.forEachElement(table: table, set: RulesetLowering.Names.granted(family)) { element in
                    guard let raw = RawGrant(element.key, family: family), let expires = element.expires else { return }
                    // A dump can repeat an element (see `NetlinkDump.containsElement`).
                    guard next[raw] == nil else { return }
                    count += 1
                    let expiry = now.addingTimeInterval(Double(expires) / 1000)
                    // Taken out of `live`: what is left there afterwards has gone.
                    if var known = live.removeValue(forKey: raw) {
                        known.expiry = expiry
                        next[raw] = known
                    } else if let spelled = raw.spelled() {
                        let grant = TimedGrant(key: spelled, expiry: expiry)
                        next[raw] = grant
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
                _ = try dump.forEachElement(table: table, set: RulesetLowering.Names.banned(family)) { element in
                    banned += 1
                    if let expires = element.expires { nextExpiry = min(nextExpiry, now.addingTimeInterval(Double(expires) / 1000)) }
                }
                bans[family] = banned
            }
            // What the dumps did not list and whose time has not come may only have been
            // skipped: ask the kernel for each before reporting it gone.
            var removed: [TimedGrant] = []
            for (raw, grant) in live {
                if grant.expiry > now,
                   try dump.containsElement(table: table, set: RulesetLowering.Names.granted(raw.family), key: raw.keyBytes) {
                    next[raw] = grant
                    grants[raw.family, default: 0] += 1
                } else {
                    removed.append(grant)
                }
            }
            live = next
            nextExpiry = next.values.reduce(nextExpiry) { min($0, $1.expiry) }
            lastFull = Marks(generation: generation, changes: changes, nextExpiry: nextExpiry, grants: grants, bans: bans)
            return Reading(changes: GrantChanges(added: added, removed: removed), grants: grants, bans: bans, tableReplaced: replaced)
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
        opening[Opening(family: family, port: port)]?.sorted() ?? []
    }
}

/// A granted element as the kernel stores it: `source . protocol . port`, each part padded
/// to 4 bytes. Integers only, so comparing two readings of 10,000 grants is cheap.
struct RawGrant: Hashable {
    var family: IPFamily
    var high: UInt64
    var low: UInt64
    var proto: UInt8
    var port: UInt16

    /// Two words into the hasher rather than five fields: a reading hashes every grant twice.
    func hash(into hasher: inout Hasher) {
        hasher.combine(high ^ low.byteSwapped)
        hasher.combine(UInt64(port) << 16 | UInt64(proto) << 8 | (family == .ipv4 ? 4 : 6) | low << 32)
    }

    init?(_ key: UnsafeRawBufferPointer, family: IPFamily) {
        let size = family == .ipv4 ? 4 : 16
        guard key.count == size + 8 else { return nil }
        self.family = family
        if family == .ipv4 {
            high = 0
            low = UInt64(key.loadUnaligned(as: UInt32.self))
        } else {
            high = key.loadUnaligned(as: UInt64.self)
            low = key.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        }
        proto = key[size]
        port = UInt16(key[size + 4]) << 8 | UInt16(key[size + 5])
    }

    /// The key as the kernel stores it.
    var keyBytes: [UInt8] {
        var bytes: [UInt8] = []
        if family == .ipv4 {
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: low)) { bytes += $0 }
        } else {
            withUnsafeBytes(of: high) { bytes += $0 }
            withUnsafeBytes(of: low) { bytes += $0 }
        }
        return bytes + [proto, 0, 0, 0, UInt8(port >> 8), UInt8(port & 0xff), 0, 0]
    }

    /// The key with the address as text (the form nft prints); nil for anything knockc
    /// would not have written.
    func spelled() -> GrantKey? {
        guard port > 0, let transport = TransportProtocol.allCases.first(where: { $0.number == proto }) else { return nil }
        var bytes = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: high) { bytes.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: low) { bytes.replaceSubrange(8..<16, with: $0) }
        let address = family == .ipv4 ? Array(bytes[8..<12]) : bytes
        guard let source = address.withUnsafeBytes({ NetlinkDump.address($0, family: family) }) else { return nil }
        return GrantKey(family: family, source: source, port: TransportPort(transport, port))
    }
}
