import Foundation
import Glibc
import KnockCore
import Logging

/// The three spellings of an event: a JSON line for stdout, log metadata for stderr, and
/// `KNOCKC_*` variables for hooks. All three carry the same fields.
public enum EventLine {
    /// `{"event": "grant", "source": ..., "family", "ports", "sequences", "expires_at",
    /// "time"}`, plus "reason" for expire and end events. Keys sorted, one line. Written
    /// by hand rather than with JSONSerialization: at a few hundred events a second the
    /// serializer and ISO 8601 formatter were most of the watcher's CPU.
    public static func json(_ reported: ReportedEvent) -> String {
        let event = reported.event
        var fields: [(String, String)] = [
            ("event", quoted(event.kind.rawValue)),
            ("expires_at", quoted(timestamp(event.expiresAt))),
            ("family", quoted(event.family.rawValue)),
            ("ports", "[" + event.ports.map { quoted($0.description) }.joined(separator: ",") + "]"),
        ]
        if let reason = reported.reason { fields.append(("reason", quoted(reason.rawValue))) }
        fields += [
            ("sequences", "[" + event.sequences.map(quoted).joined(separator: ",") + "]"),
            ("source", quoted(event.source.text)),
            ("time", quoted(timestamp(reported.time))),
        ]
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    private static func quoted(_ text: String) -> String { NftJSONRenderer.jsonString(text) }

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

    /// RFC 3339 in UTC with milliseconds, as 2026-11-25T07:15:59.031Z.
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds % 1000), 3))Z"
    }
}
