/// A program the watcher runs on an event: `on_grant` or `on_expire`. An argv array, run
/// without a shell; the event reaches it in `KNOCKC_*` environment variables, so a source
/// address is never pasted into a command line (knockd's `%IP%` in `system()`).
public struct HookCommand: Equatable, Hashable, Sendable {
    /// The program (an absolute path) and its arguments.
    public let arguments: [String]

    public var program: String { arguments[0] }

    public static let maxArguments = 64
    public static let maxArgumentBytes = 4096
    public static let defaultTimeout = Duration.seconds(10)
    public static let longestTimeout = Duration.seconds(600)

    public enum Problem: Error, Equatable, Sendable {
        case empty
        case notAbsolute(String)
        case nulCharacter
        case tooLong
    }

    public init(_ arguments: [String]) throws(Problem) {
        guard let program = arguments.first, !program.isEmpty else { throw .empty }
        guard arguments.count <= Self.maxArguments, arguments.allSatisfy({ $0.utf8.count <= Self.maxArgumentBytes })
        else { throw .tooLong }
        guard !arguments.contains(where: { $0.utf8.contains(0) }) else { throw .nulCharacter }
        // PATH lookup would make the program depend on the watcher's environment.
        guard program.hasPrefix("/") else { throw .notAbsolute(program) }
        self.arguments = arguments
    }
}

/// The hooks of the spec's top level or of one sequence.
public struct Hooks: Equatable, Sendable {
    public var onGrant: HookCommand?
    public var onExpire: HookCommand?

    public init(onGrant: HookCommand? = nil, onExpire: HookCommand? = nil) {
        self.onGrant = onGrant
        self.onExpire = onExpire
    }
}
