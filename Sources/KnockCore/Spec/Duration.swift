/// A span of time as the spec writes it (`500ms`, `5s`, `10m`, `1h`, `1d`), kept in
/// milliseconds because that is the kernel's unit for set element timeouts.
public struct Duration: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func seconds(_ seconds: Int64) -> Duration { .init(milliseconds: seconds * 1000) }

    /// The longest duration a spec may ask for. Kept well under the kernel's limits for an
    /// element timeout, and long enough for any grant a person means.
    public static let maximum = Duration(milliseconds: 24 * 86_400_000)

    static let units: [(suffix: String, milliseconds: Int64)] = [
        ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    /// Parses one number and one unit; `nil` for anything else, including zero.
    public init?(parsing text: String) {
        guard let digitsEnd = text.firstIndex(where: { !$0.isASCII || !$0.isNumber }),
              digitsEnd != text.startIndex,
              let unit = Self.units.first(where: { $0.suffix == text[digitsEnd...] }),
              text[..<digitsEnd].count <= 12,
              let amount = Int64(text[..<digitsEnd]),
              amount > 0
        else { return nil }
        let (milliseconds, overflow) = amount.multipliedReportingOverflow(by: unit.milliseconds)
        // Far past `maximum` either way; the caller reports it as too long.
        self.milliseconds = overflow ? Int64.max : milliseconds
    }

    public static func < (lhs: Duration, rhs: Duration) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// Largest units first, in the notation both the spec and nft read (`90s`, `1h`,
    /// `1s500ms`). nft 1.0.6 refuses a millisecond count of nine digits or more, so a long
    /// duration is never written in milliseconds alone.
    public var description: String {
        guard milliseconds > 0 else { return "0ms" }
        if let unit = Self.units.last(where: { milliseconds % $0.milliseconds == 0 }),
           milliseconds / unit.milliseconds < 100_000_000 {
            return "\(milliseconds / unit.milliseconds)\(unit.suffix)"
        }
        var rest = milliseconds
        var parts = ""
        for unit in Self.units.reversed() where rest >= unit.milliseconds {
            parts += "\(rest / unit.milliseconds)\(unit.suffix)"
            rest %= unit.milliseconds
        }
        return parts
    }
}

extension Duration: Encodable {
    /// Whole seconds, rounded down: what `status --format json` promises.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(milliseconds / 1000)
    }
}
