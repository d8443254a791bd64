import Foundation
import KnockCore

/// Reads the table's named counters (see `RulesetLowering.counters`): what the kernel itself
/// counted, whether or not a watcher was running.
public struct CounterReader {
    private let nft: NftContext
    public let table: String

    public init(table: String) throws(NftError) {
        precondition(NameRules.isValidTableName(table), "not a table name: \(table)")
        nft = try NftContext(output: .json)
        self.table = table
    }

    /// Packets counted by each counter, by name; empty when the table does not exist.
    public func packets() throws(NftError) -> [String: UInt64] {
        let listing: String
        do {
            listing = try nft.run("list counters table inet \(table)")
        } catch where error.isMissingObject {
            return [:]
        }
        return Self.parse(listing)
    }

    static func parse(_ json: String) -> [String: UInt64] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let objects = root["nftables"] as? [[String: Any]] else { return [:] }
        var counts: [String: UInt64] = [:]
        for object in objects {
            guard let counter = object["counter"] as? [String: Any], let name = counter["name"] as? String,
                  let packets = counter["packets"] as? Int, packets >= 0 else { continue }
            counts[name] = UInt64(packets)
        }
        return counts
    }
}
