import Foundation
import KnockCore

/// The grants the watcher knows of, each with the time it runs out: the entries in chunks,
/// found through a table of their positions.
///
/// Why not `[Grant.ID: (grant: Grant, expiry: Date)]`: a Swift dictionary keeps at most 3/4 of
/// its buckets full, each bucket as large as a key and its value, so 100,000 grants took 2^18
/// buckets of 96 bytes (24 MiB), and each reading built a second dictionary beside the first;
/// the watcher's resident memory was 45 to 70 MiB. Here an entry takes 48 bytes, a grant's
/// sequences being one array per port shared by reference, and a bucket of the position
/// table 4 bytes: about 6 MiB for 100,000 grants. Chunks rather than one array, because a
/// growing array briefly holds its old storage and the new, twice as large.
struct KnownGrants {
    struct Entry {
        var id: Grant.ID
        /// Set by a full reading for each grant it listed (in what would be padding after `id`).
        var listed = false
        var expiry: Date
        var timeout: Duration
        /// The sequences that opened its port when it was first seen: one array per port,
        /// the catalog's, shared.
        var sequences: [String]

        /// The grant, with the time it has left at `now`.
        func grant(at now: Date) -> Grant {
            Grant(source: id.source, port: id.port, sequences: sequences, timeout: timeout,
                  expires: Duration(milliseconds: Int64((expiry.timeIntervalSince(now) * 1000).rounded(.down))))
        }
    }

    /// Entries in chunks of `chunkSize`, all full but the last.
    private var chunks: [[Entry]] = []
    private static let chunkBits = 12
    private static let chunkSize = 1 << chunkBits
    /// Open addressing with linear probing: each bucket holds an entry's position plus one, or
    /// 0 when empty; at most 3/4 of them are used.
    private var buckets = [Int32](repeating: 0, count: 16)
    /// How many grants of each family.
    private(set) var counts = Dictionary(uniqueKeysWithValues: IPFamily.allCases.map { ($0, 0) })
    private(set) var count = 0

    /// The position of the grant with `id`.
    func index(of id: Grant.ID) -> Int? {
        let (bucket, found) = find(id)
        return found ? Int(buckets[bucket]) - 1 : nil
    }

    subscript(index: Int) -> Entry {
        get { chunks[index >> Self.chunkBits][index & (Self.chunkSize - 1)] }
        set {
            precondition(newValue.id == self[index].id, "an entry keeps its grant")
            chunks[index >> Self.chunkBits][index & (Self.chunkSize - 1)] = newValue
        }
    }

    /// Adds a grant not yet known.
    mutating func insert(_ entry: Entry) {
        if (count + 1) * 4 > buckets.count * 3 { rebuild(buckets: buckets.count * 2) }
        let (bucket, found) = find(entry.id)
        precondition(!found, "the grant is already known")
        if count == chunks.count << Self.chunkBits {
            chunks.append([])
            chunks[chunks.count - 1].reserveCapacity(Self.chunkSize)
        }
        chunks[chunks.count - 1].append(entry)
        count += 1
        buckets[bucket] = Int32(count)
        counts[entry.id.source.family, default: 0] += 1
    }

    /// Forgets the grant at `index`; the last entry takes its place.
    @discardableResult
    mutating func remove(at index: Int) -> Entry {
        let removed = self[index]
        vacate(find(removed.id).bucket)
        if index != count - 1 {
            let moved = self[count - 1]
            buckets[find(moved.id).bucket] = Int32(index + 1)
            chunks[index >> Self.chunkBits][index & (Self.chunkSize - 1)] = moved
        }
        chunks[chunks.count - 1].removeLast()
        if chunks[chunks.count - 1].isEmpty { chunks.removeLast() }
        count -= 1
        counts[removed.id.source.family, default: 0] -= 1
        if buckets.count > 64, count * 8 < buckets.count { rebuild(buckets: buckets.count / 4) }
        return removed
    }

    /// Clears every entry's `listed` mark, before a full reading.
    mutating func unlistAll() {
        for chunk in chunks.indices {
            for index in chunks[chunk].indices { chunks[chunk][index].listed = false }
        }
    }

    /// The grants a full reading did not list.
    var unlisted: [Grant.ID] {
        chunks.flatMap { $0.compactMap { $0.listed ? nil : $0.id } }
    }

    /// The grants whose time has come by `now`, and the soonest time any other runs out.
    func due(at now: Date) -> (due: [Grant.ID], next: Date) {
        var due: [Grant.ID] = []
        var next = Date.distantFuture
        for chunk in chunks {
            for entry in chunk {
                if entry.expiry <= now {
                    due.append(entry.id)
                } else if entry.expiry < next {
                    next = entry.expiry
                }
            }
        }
        return (due, next)
    }

    // MARK: The position table

    private var mask: Int { buckets.count - 1 }

    /// The bucket that holds `id`, or the empty one where it would go.
    private func find(_ id: Grant.ID) -> (bucket: Int, found: Bool) {
        var bucket = id.hashValue & mask
        while true {
            let position = buckets[bucket]
            if position == 0 { return (bucket, false) }
            if self[Int(position) - 1].id == id { return (bucket, true) }
            bucket = (bucket + 1) & mask
        }
    }

    /// Empties `bucket`, moving back the entries after it that probed past it, so that no
    /// lookup stops short at the hole.
    private mutating func vacate(_ bucket: Int) {
        var hole = bucket
        var next = bucket
        while true {
            next = (next + 1) & mask
            let position = buckets[next]
            if position == 0 { break }
            let home = self[Int(position) - 1].id.hashValue & mask
            // It may move back unless its home lies after the hole, up to where it is.
            if (next - home) & mask >= (next - hole) & mask {
                buckets[hole] = position
                hole = next
            }
        }
        buckets[hole] = 0
    }

    private mutating func rebuild(buckets count: Int) {
        buckets = [Int32](repeating: 0, count: count)
        for index in 0..<self.count {
            buckets[find(self[index].id).bucket] = Int32(index + 1)
        }
    }
}
