import Foundation
import KnockCore
import Logging

/// The three spellings of an event: a JSON line for stdout, log metadata for stderr, and
/// `KNOCKC_*` variables for hooks. All three carry the same fields.
public enum EventLine {
    /// `{"event": "grant", "source": ..., "family", "ports", "sequences", "expires_at",
    /// "time"}`, plus "reason" for expire and end events. Keys sorted, one line.
    public static func json(_ reported: ReportedEvent) -> String {
        let event = reported.event
        var object: [String: Any] = [
            "event": event.kind.rawValue,
            "source": event.source.text,
            "family": event.family.rawValue,
            "ports": event.ports.map(\.description),
            "sequences": event.sequences,
            "expires_at": timestamp(event.expiresAt),
            "time": timestamp(reported.time),
        ]
        if let reason = reported.reason { object["reason"] = reason.rawValue }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    public static func metadata(_ reported: ReportedEvent) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "source": "\(reported.event.source)",
            "ports": "\(reported.event.ports.map(\.description).joined(separator: ","))",
            "sequences": "\(reported.event.sequences.joined(separator: ","))",
            "expires_at": "\(timestamp(reported.event.expiresAt))",
        ]
        if let reason = reported.reason { metadata["reason"] = "\(reason.rawValue)" }
        return metadata
    }

    /// What a hook receives. Lists are separated by spaces, so `for p in $KNOCKC_PORTS`
    /// works in a shell script; no value contains a space of its own.
    public static func environment(_ reported: ReportedEvent) -> [String: String] {
        let event = reported.event
        var environment = [
            "KNOCKC_EVENT": event.kind.rawValue,
            "KNOCKC_SOURCE": event.source.text,
            "KNOCKC_FAMILY": event.family.rawValue,
            "KNOCKC_PORTS": event.ports.map(\.description).joined(separator: " "),
            "KNOCKC_SEQUENCE": event.sequences.joined(separator: " "),
            "KNOCKC_EXPIRES_AT": timestamp(event.expiresAt),
            "KNOCKC_TIME": timestamp(reported.time),
        ]
        if let reason = reported.reason { environment["KNOCKC_REASON"] = reason.rawValue }
        return environment
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
