import ArgumentParser
import Foundation
import Glibc
import KnockClient
import KnockCore
import KnockSecrets

struct KnockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "knock",
        abstract: "Send a knock sequence to a host (the client).",
        discussion: """
            Sends exactly one packet per knock: for tcp/PORT a connection attempt that is \
            abandoned at once (one SYN, never retransmitted), for udp/PORT one datagram, for \
            icmp/LENGTH one echo request with LENGTH bytes of payload (what `ping -c1 -s LENGTH` \
            sends). An icmp knock needs a ping socket (net.ipv4.ping_group_range) or a raw one \
            (root or CAP_NET_RAW); knockc checks that before it sends anything. Give the knocks \
            on the command line, or name a sequence of a spec with --spec and --sequence.

              knockc knock 192.0.2.1 tcp/7000 udp/9000 tcp/8000
              knockc knock 192.0.2.1 tcp/7000 icmp/731 udp/9000
              knockc knock server.example --spec knockc.yaml --sequence ssh

            For a sequence with `spa:`, sends its one authorized datagram instead: the token of \
            the current window, derived from the secret the spec names (which must be yours \
            and readable by no one else, as ssh keys). Without a spec: --secret FILE --sequence \
            NAME --spa udp/PORT [--every 30s] [--slots 4]. Each retry of --then-connect takes \
            the next slot, then the next window. The token is never printed. Both clocks must \
            agree within the sequence's skew (one window by default).
            """
    )

    @Argument(help: "The host to knock on: an IPv4 or IPv6 address, or a name.")
    var host: String

    @Argument(help: "The knocks, in order, as tcp/PORT, udp/PORT or icmp/LENGTH.")
    var knocks: [String] = []

    @Option(help: "A spec to take the knocks from (with --sequence).", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String?

    @Option(help: "The sequence of --spec to send.")
    var sequence: String?

    @Option(help: "The secret of a `spa` sequence, without --spec (with --sequence and --spa).", completion: .file())
    var secret: String?

    @Option(help: "Send the authorized datagram of --sequence to this port, as udp/62201 (with --secret).")
    var spa: String?

    @Option(help: "With --spa: the window length of the sequence, as 30s.")
    var every: String = "30s"

    @Option(help: "With --spa: the slots per window of the sequence.")
    var slots: Int = OnePacketAuthorization.defaultSlots

    @Option(help: "The pause between two knocks, as 200ms or 1s; keep it under the sequence's step_timeout.")
    var delay: String = "200ms"

    @Option(help: "After knocking, wait until this TCP port accepts a connection; exit 0 when it does, 1 when it does not.")
    var thenConnect: UInt16?

    @Option(help: "How long --then-connect waits, as 5s.")
    var timeout: String = "5s"

    @Option(help: "With --then-connect: send the whole sequence again this many times while the port stays closed.")
    var retries: Int = 0

    @Flag(name: .customShort("4"), help: "Use IPv4 only.")
    var ipv4 = false

    @Flag(name: .customShort("6"), help: "Use IPv6 only.")
    var ipv6 = false

    func validate() throws {
        if secret != nil || spa != nil {
            guard let secret, let spa, sequence != nil, spec == nil, knocks.isEmpty else {
                throw ValidationError("--secret, --spa and --sequence go together, without --spec or knocks.")
            }
            guard let port = try? TransportPort(parsing: spa), port.proto == .udp else {
                throw ValidationError("'\(spa)' is not a udp port for --spa; expected udp/PORT, as udp/62201.")
            }
            guard let window = Duration(parsing: every), OnePacketAuthorization.everyRange.contains(window),
                  window.milliseconds % 1000 == 0 else {
                throw ValidationError("'\(every)' is not a window length for --every; expected whole seconds from 1s to 1h.")
            }
            guard (1...64).contains(slots) else { throw ValidationError("--slots takes 1 to 64.") }
        } else if spec != nil || sequence != nil {
            guard spec != nil, sequence != nil else { throw ValidationError("--spec and --sequence go together.") }
            guard knocks.isEmpty else { throw ValidationError("Give knocks on the command line or --spec and --sequence, not both.") }
        } else if knocks.isEmpty {
            throw ValidationError("Give at least one knock (as tcp/7000), or --spec and --sequence.")
        }
        for word in knocks {
            do { _ = try Knock(parsing: word) } catch { throw ValidationError("'\(word)' is not a knock; expected \(Knock.syntaxHint).") }
        }
        guard let pause = Duration(parsing: delay) else {
            throw ValidationError("'\(delay)' is not a duration; expected a number and a unit: 500ms, 1s.")
        }
        // Bounded like a spec's durations: past 24d, no knock sequence could still be open,
        // and the sleep would overflow.
        guard pause <= .maximum else { throw ValidationError(Self.tooLong(delay, option: "--delay")) }
        guard !(ipv4 && ipv6) else { throw ValidationError("-4 and -6 exclude each other.") }
        guard let wait = Duration(parsing: timeout) else {
            throw ValidationError("'\(timeout)' is not a duration; expected a number and a unit: 5s, 500ms.")
        }
        guard wait <= .maximum else { throw ValidationError(Self.tooLong(timeout, option: "--timeout")) }
        guard (0...100).contains(retries) else { throw ValidationError("--retries takes 0 to 100.") }
        if retries > 0, thenConnect == nil { throw ValidationError("--retries needs --then-connect, which tells whether the knock worked.") }
        if thenConnect == 0 { throw ValidationError("--then-connect takes a port from 1 to 65535.") }
    }

    static func tooLong(_ text: String, option: String) -> String {
        "'\(text)' is too long for \(option); the longest is \(Duration.maximum)."
    }

    /// What one attempt sends: the knocks of a sequence, or one authorized datagram.
    private enum Packets {
        case knocks([Knock])
        case authorized(KnockDerivation, OnePacketAuthorization)
    }

    func run() throws {
        let packets = try resolvePackets()
        let knocker = Knocker(host: host, delay: Duration(parsing: delay)!, family: ipv4 ? .ipv4 : ipv6 ? .ipv6 : .any)
        let target: ResolvedHost
        do {
            target = try knocker.resolve()
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCodes.knockFailed
        }
        // A random first slot, so two clients of one secret rarely pick the same token.
        let firstSlot = if case .authorized(_, let spa) = packets { Int.random(in: 0..<spa.slots) } else { 0 }
        for attempt in 0...retries {
            let sent: String
            do {
                switch packets {
                case .knocks(let knocks):
                    try knocker.send(knocks, to: target)
                    sent = knocks.map(\.description).joined(separator: " ")
                case .authorized(let derivation, let spa):
                    // Each attempt takes the next slot, then the next window.
                    let window = KnockDerivation.window(at: Date(), every: spa.windowSeconds) + Int64((firstSlot + attempt) / spa.slots)
                    let slot = (firstSlot + attempt) % spa.slots
                    try knocker.sendAuthorized(token: derivation.spaToken(window: window, slot: UInt32(slot)), port: spa.port.port, to: target)
                    sent = "authorized packet to \(spa.port) (window \(window), slot \(slot))"
                }
            } catch {
                Console.error("knockc: \(error)")
                throw ExitCodes.knockFailed
            }
            print("knocked \(target): \(sent)")
            guard let port = thenConnect else { return }
            if PortProbe.waitUntilOpen(target, port: port, timeout: Duration(parsing: timeout)!) {
                print("tcp/\(port) on \(target) is open")
                return
            }
            let again = if case .knocks = packets { "; knocking again" } else { "; sending the next token" }
            Console.error("knockc: tcp/\(port) on \(target) did not open within \(timeout)" + (attempt < retries ? again : ""))
        }
        throw ExitCode(1)
    }

    /// The knocks given, the sequence of --spec (knocks, or its `spa` packet), or the `spa`
    /// packet of --secret and --spa. The spec is read once; a secret is read before any packet
    /// leaves, and refused when others can read it.
    private func resolvePackets() throws -> Packets {
        if let secret, let spa, let sequence, let port = try? TransportPort(parsing: spa) {
            let settings = OnePacketAuthorization(secret: secret, port: port, every: Duration(parsing: every)!, slots: slots)
            return .authorized(try derivation(settings, sequence: sequence), settings)
        }
        guard let spec, let sequence else { return .knocks(try knocks.map { try Knock(parsing: $0) }) }
        let loaded = try SpecOptions.parse([spec]).load()
        guard let found = loaded.sequences.first(where: { $0.name == sequence }) else {
            let names = loaded.sequences.map(\.name).joined(separator: ", ")
            Console.error("knockc: \(spec) has no sequence '\(sequence)'; it has \(names)")
            throw ExitCodes.specErrors
        }
        guard let spa = found.spa else { return .knocks(found.knocks) }
        return .authorized(try derivation(spa, sequence: found.name), spa)
    }

    private func derivation(_ spa: OnePacketAuthorization, sequence: String) throws -> KnockDerivation {
        do {
            return KnockDerivation(secret: try Secret(contentsOf: spa.secret, requiredOwner: getuid()), sequence: sequence)
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCodes.knockFailed
        }
    }
}
