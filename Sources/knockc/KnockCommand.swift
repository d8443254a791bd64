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
            on the command line, or name a sequence of a spec with --spec and --sequence. A \
            name with IPv4 and IPv6 addresses is knocked over both families in turn (a grant \
            covers the address that knocked, and ssh may connect over either); -4 or -6 \
            knocks over one.

              knockc knock 192.0.2.1 tcp/7000 udp/9000 tcp/8000
              knockc knock 192.0.2.1 tcp/7000 icmp/731 udp/9000
              knockc knock server.example --spec knockc.yaml --sequence ssh

            For a sequence with `spa:`, sends its one authorized datagram instead: the token of \
            the current window, derived from the secret the spec names (which must be yours \
            and readable by no one else, as ssh keys). Without a spec: --secret FILE --sequence \
            NAME --spa udp/PORT [--every 30s] [--slots 4]. Each retry of --then-connect takes \
            the next slot, then the next window. The token is never printed. Both clocks must \
            agree within the sequence's skew (one window by default).

            For a sequence with `rotate:`, sends the current window's rotating knocks, their \
            ports derived from the secret. Without a spec: --secret FILE --sequence NAME \
            --rotate tcp,udp,tcp --ports LO-HI [--every 30s] [--skew 1]. Each retry of \
            --then-connect or --proxy moves to the next window (a window whose knocks granted once opens \
            nothing again), waiting for it when it lies beyond the skew.

            --proxy PORT knocks as --then-connect does, keeps the connection that opened, and \
            relays stdin and stdout over it until the server closes it, so that knockc can be \
            ssh's ProxyCommand (in ~/.ssh/config):

              ProxyCommand knockc knock %h --spec ~/.config/knockc/client.yaml --sequence ssh --proxy %p

            With --proxy nothing but the relayed bytes goes to stdout; messages go to stderr. \
            It exits 0 when the server closes the connection, 1 when the port stays closed \
            (after --retries; ssh then sees its connection fail) or the relay fails, and 4 when \
            no knock could be sent. ssh's ConnectTimeout, if set, covers the ProxyCommand's \
            knocks and wait too (until the server's banner): keep it above --timeout × \
            (--retries + 1) plus the knocks, or ssh gives up first. The relay ends when the \
            server closes its side, even while stdin still has bytes.
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

    @Option(help: "Send the rotating knocks of --sequence with these protocols, as tcp,udp,tcp (with --secret and --ports).")
    var rotate: String?

    @Option(help: "With --rotate: the sequence's port range, as 20000-40000.")
    var ports: String?

    @Option(help: "With --spa or --rotate: the window length of the sequence, as 30s.")
    var every: String = "30s"

    @Option(help: "With --rotate: the windows either side that the server accepts (its `skew`).")
    var skew: Int = OnePacketAuthorization.defaultSkew

    @Option(help: "With --spa: the slots per window of the sequence.")
    var slots: Int = OnePacketAuthorization.defaultSlots

    @Option(help: "The pause between two knocks, as 200ms or 1s; keep it under the sequence's step_timeout.")
    var delay: String = "200ms"

    @Option(help: "After knocking, wait until this TCP port accepts a connection; exit 0 when it does, 1 when it does not.")
    var thenConnect: UInt16?

    @Option(help: ArgumentHelp(
        "After knocking, connect to this TCP port once it accepts and relay stdin and stdout over the connection, as an ssh ProxyCommand; exit 1 when it does not open.",
        valueName: "port"))
    var proxy: UInt16?

    @Option(help: "How long --then-connect or --proxy waits for the port, as 5s.")
    var timeout: String = "5s"

    @Option(help: "With --then-connect or --proxy: send the whole sequence again this many times while the port stays closed.")
    var retries: Int = 0

    @Flag(name: .customShort("4"), help: "Knock over IPv4 only (a name is otherwise knocked over each family it has).")
    var ipv4 = false

    @Flag(name: .customShort("6"), help: "Knock over IPv6 only.")
    var ipv6 = false

    func validate() throws {
        if rotate != nil || ports != nil {
            guard secret != nil, rotate != nil, ports != nil, spa == nil, sequence != nil, spec == nil, knocks.isEmpty else {
                throw ValidationError("--secret, --rotate, --ports and --sequence go together, without --spa, --spec or knocks.")
            }
            let settings = try rotatingKnocks()
            guard settings.windowsPerEpoch > 0 else {
                throw ValidationError("--ports \(settings.portsText) has fewer ports than --rotate has knocks.")
            }
            guard (0...10).contains(skew) else { throw ValidationError("--skew takes 0 to 10.") }
        } else if secret != nil || spa != nil {
            guard let spa, secret != nil, sequence != nil, spec == nil, knocks.isEmpty else {
                throw ValidationError("--secret, --spa and --sequence go together, without --spec or knocks.")
            }
            guard let port = try? TransportPort(parsing: spa), port.proto == .udp else {
                throw ValidationError("'\(spa)' is not a udp port for --spa; expected udp/PORT, as udp/62201.")
            }
            _ = try window()
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
        guard thenConnect == nil || proxy == nil else {
            throw ValidationError("--then-connect and --proxy exclude each other: --proxy already waits for its port.")
        }
        if retries > 0, thenConnect == nil, proxy == nil {
            throw ValidationError("--retries needs --then-connect or --proxy, which tell whether the knock worked.")
        }
        if thenConnect == 0 { throw ValidationError("--then-connect takes a port from 1 to 65535.") }
        if proxy == 0 { throw ValidationError("--proxy takes a port from 1 to 65535.") }
    }

    /// --every, checked as a spec's `every`.
    private func window() throws -> Duration {
        guard let window = Duration(parsing: every), OnePacketAuthorization.everyRange.contains(window),
              window.milliseconds % 1000 == 0 else {
            throw ValidationError("'\(every)' is not a window length for --every; expected whole seconds from 1s to 1h.")
        }
        return window
    }

    /// --secret, --rotate, --ports, --every and --skew as the sequence's `rotate:`.
    private func rotatingKnocks() throws -> RotatingKnocks {
        guard let secret, let rotate, let ports else { throw ValidationError("--rotate needs --secret and --ports.") }
        let protocols = try rotate.split(separator: ",", omittingEmptySubsequences: false).map { word in
            guard let proto = TransportProtocol(rawValue: String(word)) else {
                throw ValidationError("'\(rotate)' is not a list of protocols for --rotate; expected tcp or udp for each knock, as tcp,udp,tcp.")
            }
            return proto
        }
        guard protocols.count <= SpecValidator.maxKnocks else {
            throw ValidationError("--rotate has \(protocols.count) knocks; the most is \(SpecValidator.maxKnocks).")
        }
        guard ports.contains("-"), let range = try? PortRange(parsing: "tcp/" + ports) else {
            throw ValidationError("'\(ports)' is not a port range for --ports; expected FIRST-LAST from 1 to 65535, as 20000-40000.")
        }
        return RotatingKnocks(secret: secret, protocols: protocols, ports: range.first...range.last, every: try window(), skew: skew)
    }

    static func tooLong(_ text: String, option: String) -> String {
        "'\(text)' is too long for \(option); the longest is \(Duration.maximum)."
    }

    /// What one attempt sends: the knocks of a sequence, or one authorized datagram.
    private enum Packets {
        case knocks([Knock])
        case authorized(KnockDerivation, OnePacketAuthorization)
        case rotating(KnockDerivation, RotatingKnocks)
    }

    func run() throws {
        if proxy != nil { Self.prepareStandardDescriptorsForRelay() }
        let packets = try resolvePackets()
        let knocker = Knocker(host: host, delay: Duration(parsing: delay)!, family: ipv4 ? .ipv4 : ipv6 ? .ipv6 : .any)
        let targets: [ResolvedHost]
        do {
            targets = try knocker.resolveEveryFamily()
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCodes.knockFailed
        }
        // A random first slot, so two clients of one secret rarely pick the same token.
        let firstSlot = if case .authorized(_, let spa) = packets { Int.random(in: 0..<spa.slots) } else { 0 }
        var lastWindow: Int64?
        for attempt in 0...retries {
            var reached: [ResolvedHost] = []
            for (index, target) in targets.enumerated() {
                do {
                    // Each family's knocks take a turn of their own: a token or a window's
                    // knocks open once, whoever sends them.
                    let sent = try send(packets, turn: attempt * targets.count + index, firstSlot: firstSlot,
                                        lastWindow: &lastWindow, knocker: knocker, to: target)
                    report("knocked \(target): \(sent)")
                    reached.append(target)
                } catch {
                    Console.error("knockc: \(error)")
                    // A host may have an address of a family this client cannot reach.
                    guard targets.count > 1 else { throw ExitCodes.knockFailed }
                }
            }
            guard !reached.isEmpty else { throw ExitCodes.knockFailed }
            guard let port = thenConnect ?? proxy else { return }
            let wait = Duration(parsing: timeout)!
            if proxy != nil {
                if let connection = PortProbe.connectWhenOpen(reached, port: port, timeout: wait) {
                    try relay(over: connection, port: port)
                    return
                }
            } else if let open = PortProbe.waitUntilOpen(reached, port: port, timeout: wait) {
                report("tcp/\(port) on \(open) is open")
                return
            }
            let again = switch packets {
            case .knocks: "; knocking again"
            case .authorized: "; sending the next token"
            case .rotating: "; knocking again in the next window"
            }
            Console.error("knockc: tcp/\(port) on \(reached.map(\.address).joined(separator: " and ")) did not open within \(timeout)"
                + (attempt < retries ? again : ""))
        }
        if retries > 0 {
            let port = thenConnect ?? proxy ?? 0
            Console.error("knockc: giving up on tcp/\(port) of \(host) after \(retries + 1) attempts of \(timeout) each")
        }
        throw ExitCode(1)
    }

    /// A line of progress: on stdout, but never with --proxy, whose stdout carries the relayed
    /// bytes (ssh reads them as its protocol); a login through ssh needs no report of knocks.
    private func report(_ line: String) {
        if proxy == nil { print(line) }
    }

    /// Relays stdin and stdout over `connection` until the server closes it (exit 0), or
    /// fails (exit 1, with a message on stderr).
    private func relay(over connection: OpenConnection, port: UInt16) throws {
        defer { connection.close() }
        do {
            _ = try Relay(input: STDIN_FILENO, output: STDOUT_FILENO, connection: connection.descriptor).run()
        } catch {
            Console.error("knockc: relaying tcp/\(port) on \(connection.target) failed: \(error)")
            throw ExitCode(1)
        }
    }

    /// Before --proxy makes any socket: a standard descriptor that came closed is opened on
    /// /dev/null, or the socket would take its number and the relay would copy the server's
    /// bytes back to it. And a reader of stdout or stderr that has gone (ssh exited) must end
    /// the relay or fail a write, not kill the process with SIGPIPE.
    private static func prepareStandardDescriptorsForRelay() {
        // open(2) returns the lowest free number, so each closed one is filled in order.
        for descriptor in STDIN_FILENO...STDERR_FILENO where fcntl(descriptor, F_GETFD) == -1 {
            _ = open("/dev/null", O_RDWR)
        }
        signal(SIGPIPE, SIG_IGN)
    }

    /// Sends one attempt's packets to `target` and says what went. `turn` counts the
    /// attempts so far over every family: an authorized packet takes the next slot (then
    /// the next window) each turn; rotating knocks take the window after `lastWindow`.
    private func send(_ packets: Packets, turn: Int, firstSlot: Int, lastWindow: inout Int64?,
                      knocker: Knocker, to target: ResolvedHost) throws -> String {
        switch packets {
        case .knocks(let knocks):
            try knocker.send(knocks, to: target)
            return knocks.map(\.description).joined(separator: " ")
        case .authorized(let derivation, let spa):
            let window = KnockDerivation.window(at: Date(), every: spa.windowSeconds) + Int64((firstSlot + turn) / spa.slots)
            let slot = (firstSlot + turn) % spa.slots
            try knocker.sendAuthorized(token: derivation.spaToken(window: window, slot: UInt32(slot)), port: spa.port.port, to: target)
            return "authorized packet to \(spa.port) (window \(window), slot \(slot))"
        case .rotating(let derivation, let rotate):
            let window = Self.waitForWindow(after: lastWindow, of: rotate)
            lastWindow = window
            let knocks = try derivation.rotatingPorts(window: window, protocols: rotate.protocols, range: rotate.ports)
            try knocker.send(knocks.map { .port($0) }, to: target)
            return knocks.map(\.description).joined(separator: " ") + " (window \(window))"
        }
    }

    /// The knocks given, the sequence of --spec (knocks, or its `spa` packet), or the `spa`
    /// packet of --secret and --spa. The spec is read once; a secret is read before any packet
    /// leaves, and refused when others can read it.
    private func resolvePackets() throws -> Packets {
        if rotate != nil, let sequence {
            let settings = try rotatingKnocks()
            return .rotating(try derivation(settings, sequence: sequence), settings)
        }
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
        if let rotate = found.rotate { return .rotating(try derivation(rotate, sequence: found.name), rotate) }
        guard let spa = found.spa else { return .knocks(found.knocks) }
        return .authorized(try derivation(spa, sequence: found.name), spa)
    }

    /// The window to knock in: the current one, or the one after the window knocked last
    /// when that is later, since a window whose knocks were taken (by this client or another)
    /// opens nothing again. A window beyond the server's skew is not accepted yet, so this
    /// waits until it is, and
    /// `edgeMargin` more: the server's window edges lag its clock by the latency of its last
    /// apply (each knock's timeout counts from a time taken before the commit), so a knock
    /// sent at the first instant of a window's acceptance is refused.
    private static func waitForWindow(after last: Int64?, of rotate: RotatingKnocks) -> Int64 {
        let every = rotate.windowSeconds
        let current = KnockDerivation.window(at: Date(), every: every)
        let window = max(current, last.map { $0 + 1 } ?? current)
        let acceptedFrom = Double((window - Int64(rotate.skew)) * every) + edgeMargin(every: every)
        let wait = acceptedFrom - Date().timeIntervalSince1970
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        return window
    }

    /// Seconds past the start of a window's acceptance before knocking in it: half a second,
    /// or a quarter of a shorter window.
    static func edgeMargin(every: Int64) -> Double { min(0.5, Double(every) / 4) }

    private func derivation(_ windows: any SecretWindows, sequence: String) throws -> KnockDerivation {
        do {
            return KnockDerivation(secret: try Secret(contentsOf: windows.secret, requiredOwner: getuid()), sequence: sequence)
        } catch {
            Console.error("knockc: \(error)")
            throw ExitCodes.knockFailed
        }
    }
}
