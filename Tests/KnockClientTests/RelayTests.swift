import Foundation
import Glibc
import KnockClient
import Testing

/// The byte pump of `knock --proxy`, between pipes (stdin, stdout) and one end of a Unix
/// stream socket pair (the connection); the test plays ssh on the pipes and the server on
/// the other end of the pair. Every wait has a deadline.
@Suite struct RelayTests {
    /// stdin, stdout and the connection of one relay, with the test's ends of each.
    final class Wiring: @unchecked Sendable {
        /// The test writes the relay's input here.
        let inputWriter: Int32
        let input: Int32
        let output: Int32
        /// The test reads the relay's output here.
        let outputReader: Int32
        let connection: Int32
        /// The server's end of the connection (blocking).
        let server: Int32

        init() throws {
            var input: [Int32] = [0, 0]
            var output: [Int32] = [0, 0]
            var pair: [Int32] = [0, 0]
            try #require(pipe(&input) == 0 && pipe(&output) == 0)
            try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
            (self.input, inputWriter) = (input[0], input[1])
            (outputReader, self.output) = (output[0], output[1])
            (connection, server) = (pair[0], pair[1])
            // As PortProbe hands it over.
            _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
        }

        /// Runs the relay on a thread of its own; `finished` waits for its ending.
        func start() -> Outcome {
            let outcome = Outcome()
            let relay = Relay(input: input, output: output, connection: connection)
            Thread.detachNewThread {
                let result = Result { try relay.run() }
                outcome.set(result.mapError { $0 as Error })
            }
            return outcome
        }

        private let lock = NSLock()
        private var closed: Set<Int32> = []

        /// Closes one of the descriptors, once: a number closed twice could by then belong
        /// to a test running alongside.
        func close(_ descriptor: Int32) {
            guard lock.withLock({ closed.insert(descriptor).inserted }) else { return }
            _ = Glibc.close(descriptor)
        }

        deinit {
            for descriptor in [inputWriter, input, output, outputReader, connection, server] { close(descriptor) }
        }
    }

    /// The relay's result, once it has one.
    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private let done = DispatchSemaphore(value: 0)
        private var value: Result<Relay.Ending, Error>?

        func set(_ result: Result<Relay.Ending, Error>) {
            lock.withLock { value = result }
            done.signal()
        }

        /// The ending, or nil when the relay is still running after `seconds`.
        func finished(within seconds: Double) throws -> Relay.Ending? {
            guard done.wait(timeout: .now() + seconds) == .success else { return nil }
            done.signal()
            return try lock.withLock { value }!.get()
        }
    }

    /// Work on a thread of its own, whose result the test collects with a deadline.
    final class Background<Value: Sendable>: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var value: Value?

        init(_ body: @escaping @Sendable () -> Value) {
            Thread.detachNewThread { [self] in
                value = body()
                done.signal()
            }
        }

        func result(within seconds: Double = 30) -> Value? {
            done.wait(timeout: .now() + seconds) == .success ? value : nil
        }
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        // Every byte value first, so the binary-safety does not rest on chance.
        let random = FileHandle(forReadingAtPath: "/dev/urandom")!.readData(ofLength: max(0, count - 256))
        return Array(0...255) + Array(random)
    }

    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, bytes.count - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            offset += count
        }
        return true
    }

    /// Reads until end of stream.
    static func readAll(_ descriptor: Int32) -> [UInt8] {
        var collected: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return collected }
            collected += chunk[0..<count]
        }
    }

    @Test("several megabytes of binary data cross both ways unchanged; end of input reaches the server as end of stream")
    func largeBinaryDataBothWays() throws {
        let wiring = try Wiring()
        let upstream = Self.randomBytes(5 << 20)
        let downstream = Self.randomBytes(3 << 20)
        let outcome = wiring.start()
        let output = Background { Self.readAll(wiring.outputReader) }
        // The server answers only after the end of what the client sent: it needs the half-close.
        let server = Background { () -> [UInt8] in
            let received = Self.readAll(wiring.server)
            _ = Self.writeAll(wiring.server, downstream)
            shutdown(wiring.server, Int32(SHUT_WR))
            return received
        }
        #expect(Self.writeAll(wiring.inputWriter, upstream))
        wiring.close(wiring.inputWriter)

        #expect(server.result() == upstream, "the server received the input unchanged, then end of stream")
        #expect(try outcome.finished(within: 30) == .connectionClosed)
        wiring.close(wiring.output)
        #expect(output.result() == downstream, "the output holds what the server sent, unchanged")
    }

    @Test("both directions flow at once: an echo server returns several megabytes while they are still being sent")
    func simultaneousEcho() throws {
        let wiring = try Wiring()
        let upstream = Self.randomBytes(8 << 20)
        let outcome = wiring.start()
        let output = Background { Self.readAll(wiring.outputReader) }
        _ = Background { () -> Bool in
            var chunk = [UInt8](repeating: 0, count: 32768)
            while true {
                let count = read(wiring.server, &chunk, chunk.count)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                guard Self.writeAll(wiring.server, Array(chunk[0..<count])) else { break }
            }
            shutdown(wiring.server, Int32(SHUT_WR))
            return true
        }
        #expect(Self.writeAll(wiring.inputWriter, upstream))
        wiring.close(wiring.inputWriter)

        #expect(try outcome.finished(within: 30) == .connectionClosed)
        wiring.close(wiring.output)
        #expect(output.result() == upstream)
    }

    @Test("end of input half-closes the connection, and the relay waits for the server's answer")
    func halfClosePropagates() throws {
        let wiring = try Wiring()
        let outcome = wiring.start()
        let output = Background { Self.readAll(wiring.outputReader) }
        #expect(Self.writeAll(wiring.inputWriter, Array("question".utf8)))
        wiring.close(wiring.inputWriter)

        let received = Background { Self.readAll(wiring.server) }
        #expect(received.result() == Array("question".utf8), "the server saw the bytes, then end of stream")
        #expect(try outcome.finished(within: 0.2) == nil, "the relay still waits for the server")

        #expect(Self.writeAll(wiring.server, Array("late answer".utf8)))
        shutdown(wiring.server, Int32(SHUT_WR))
        #expect(try outcome.finished(within: 10) == .connectionClosed)
        wiring.close(wiring.output)
        #expect(output.result() == Array("late answer".utf8))
    }

    @Test("the server closing ends the relay while its input is still open")
    func serverCloseEndsTheRelay() throws {
        let wiring = try Wiring()
        let outcome = wiring.start()
        let output = Background { Self.readAll(wiring.outputReader) }
        #expect(Self.writeAll(wiring.server, Array("bye".utf8)))
        shutdown(wiring.server, Int32(SHUT_RDWR))

        #expect(try outcome.finished(within: 10) == .connectionClosed)
        wiring.close(wiring.output)
        #expect(output.result() == Array("bye".utf8))
    }

    @Test("a reader of the output that has gone ends the relay instead of the process")
    func closedOutputEndsTheRelay() throws {
        signal(SIGPIPE, SIG_IGN)
        let wiring = try Wiring()
        wiring.close(wiring.outputReader)
        let outcome = wiring.start()
        #expect(Self.writeAll(wiring.server, Array("nobody reads this".utf8)))

        #expect(try outcome.finished(within: 10) == .outputClosed)
    }

    @Test("after end of input, a reader of the output that goes ends the relay while the server stays silent")
    func readerGoingEndsASilentRelay() throws {
        let wiring = try Wiring()
        let outcome = wiring.start()
        wiring.close(wiring.inputWriter)
        let received = Background { Self.readAll(wiring.server) }
        #expect(received.result() == [], "end of input reached the server")
        #expect(try outcome.finished(within: 0.2) == nil, "the relay waits for the server's answer")
        // ssh killed: its end of our stdout goes, and the server neither answers nor closes.
        wiring.close(wiring.outputReader)
        #expect(try outcome.finished(within: 10) == .outputClosed)
    }
}
