/// A systemd unit that runs knockc, rendered from `templates/`. Its paths go into the unit
/// verbatim, so `checkPath` decides which paths a unit can carry.
public struct SystemdUnit: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// `knockc.service`: applies the spec at boot and deletes the table when stopped.
        case apply
        /// `knockc-watch.service`: runs `knockc watch`, which never changes the table.
        case watcher
        /// `knockc-refresh.service`: applies the spec again, in place, and never deletes the table.
        case refresh
        /// `knockc-refresh.timer`: starts `knockc-refresh.service` every `interval`.
        case refreshTimer(interval: Duration)

        /// The unit's file name, which is also its name for systemctl.
        public var fileName: String {
            switch self {
            case .apply: "knockc.service"
            case .watcher: "knockc-watch.service"
            case .refresh: "knockc-refresh.service"
            case .refreshTimer: "knockc-refresh.timer"
            }
        }
    }

    public var kind: Kind
    /// The spec the unit applies or watches.
    public var specPath: String
    /// The knockc executable the unit runs.
    public var knockcPath: String
    /// The table the apply unit's ExecStop deletes; the watcher's unit does not name it.
    public var tableName: String

    public init(_ kind: Kind, specPath: String, knockcPath: String, tableName: String) {
        self.kind = kind
        self.specPath = specPath
        self.knockcPath = knockcPath
        self.tableName = tableName
    }

    public var fileName: String { kind.fileName }

    /// The units that apply the spec: `knockc.service`, and, when the spec holds windows
    /// ahead (`KnockSpec.refreshInterval`), `knockc-refresh.service` and the timer that starts
    /// it every `refreshInterval`.
    public static func applyUnits(specPath: String, knockcPath: String, tableName: String,
                                  refreshInterval: Duration?) -> [SystemdUnit] {
        var kinds: [Kind] = [.apply]
        if let refreshInterval { kinds += [.refresh, .refreshTimer(interval: refreshInterval)] }
        return kinds.map { SystemdUnit($0, specPath: specPath, knockcPath: knockcPath, tableName: tableName) }
    }

    /// The unit file's text. Fails only when the compiled-in template and these values have
    /// drifted apart (`Template.render` names the placeholder).
    public func text() throws(Template.RenderError) -> String {
        let values: [String: String] = switch kind {
        case .apply: ["knockc": knockcPath, "spec": specPath, "table": tableName]
        case .watcher, .refresh: ["knockc": knockcPath, "spec": specPath]
        case .refreshTimer(let interval):
            ["interval": "\(Self.wholeSeconds(interval))s", "accuracy": "\(Self.timerAccuracy(interval))s"]
        }
        return try Template.named(fileName).render(values)
    }

    /// A timer's interval in whole seconds, rounded down but at least 1: systemd's unit, and
    /// a `horizon` is at least one window of at least 1 s.
    static func wholeSeconds(_ duration: Duration) -> Int64 { max(1, duration.milliseconds / 1000) }

    /// How late the timer may fire, in seconds, so that systemd can batch wake-ups: its
    /// default of a minute, but never more than a tenth of the interval.
    static func timerAccuracy(_ interval: Duration) -> Int64 { max(1, min(60, wholeSeconds(interval) / 10)) }

    /// Why a path cannot go into a unit. The description starts with the path, so a caller
    /// can put the option's name in front of it.
    public enum PathError: Error, Equatable, Sendable, CustomStringConvertible {
        case notAbsolute(String)
        /// A character systemd would split at, unquote, unescape or expand.
        case unsafeCharacter(Character, path: String)

        public var description: String {
            switch self {
            case .notAbsolute(let path):
                "'\(path)' is not an absolute path; systemd needs one."
            case .unsafeCharacter(let character, let path):
                "\(String(reflecting: path)) contains \(String(reflecting: String(character))), which a systemd unit would not keep as it is."
            }
        }
    }

    /// A path that goes into ExecStart= verbatim. systemd splits command lines at whitespace,
    /// unquotes quotes, unescapes backslashes, expands `$VAR` and `%` specifiers, and a
    /// newline would start a directive of its own: refuse all of them rather than escape.
    public static func checkPath(_ path: String) throws(PathError) {
        guard path.hasPrefix("/") else { throw .notAbsolute(path) }
        let forbidden: Set<Character> = ["\"", "'", "\\", "$", "%"]
        if let bad = path.first(where: { $0.isWhitespace || $0.isNewline || forbidden.contains($0)
                || $0.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) }) {
            throw .unsafeCharacter(bad, path: path)
        }
    }
}
